// The same round trip as save_load.cpp with nlohmann_json alone: the baseline.
#include <nlohmann/json.hpp>

#include <fstream>
#include <vector>

struct State {
  std::vector<float> weight = std::vector<float>(1024, 0.5f);
  std::vector<float> moment = std::vector<float>(1024, 0.0f);
};

int main() {
  State state, restored;
  std::ofstream("state.json") << nlohmann::json{{"weight", state.weight}, {"moment", state.moment}}.dump();
  const nlohmann::json json = nlohmann::json::parse(std::ifstream("state.json"));
  json.at("weight").get_to(restored.weight);
  json.at("moment").get_to(restored.moment);
  return restored.weight == state.weight ? 0 : 1;
}
