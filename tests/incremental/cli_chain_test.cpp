// The ckpt tool on incremental checkpoints: `info` shows the chain, `verify`
// checks the referenced tensors in the files of the chain, `convert` writes a
// self-contained file.

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/ckpt.hpp"
#include "ckpt/distributed.hpp"
#include "cli/cli_test_support.hpp"

namespace {

using ckpt::test::run_cli;
using ckpt::test::TempDir;

// 0.safetensors stores both tensors; 1 and 2 store "trained" and reference
// "frozen" in 0.
struct Chain {
  TempDir dir;
  std::vector<float> frozen = std::vector<float>(5000, 0.25f);
  std::vector<float> trained = std::vector<float>(10, 1.0f);
  Chain() {
    ckpt::SaveOptions options;
    options.incremental.content_hashes = true;
    for (int step = 0; step < 3; ++step) {
      trained[0] = float(step);
      const std::vector<ckpt::NamedTensor> tensors{{"frozen", ckpt::TensorView(frozen.data(), {5000})},
                                                   {"trained", ckpt::TensorView(trained.data(), {10})}};
      ckpt::write_checkpoint(file(step), tensors, nullptr, options);
      options.incremental.parent = file(step);
    }
  }
  std::string file(int step) const { return dir.file(std::to_string(step) + ".safetensors"); }
};

TEST(IncrementalCli, InfoShowsTheChainAndWhereEachTensorIsStored) {
  Chain chain;
  const auto text = run_cli({"info", chain.file(2)});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("chain:    depth 2 (saves since the last full one), parent 1.safetensors"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("referenced tensors stored in: 0.safetensors"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("in 0.safetensors"), std::string::npos) << text.out;

  const auto json = run_cli({"info", chain.file(2), "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json report = nlohmann::json::parse(json.out);
  EXPECT_EQ(report["format_version"], 3);
  EXPECT_EQ(report["chain"]["depth"], 2);
  EXPECT_EQ(report["chain"]["parent"], "1.safetensors");
  EXPECT_EQ(report["chain"]["sources"], nlohmann::json::array({"0.safetensors"}));
  EXPECT_EQ(report["stored_bytes"], 40);
}

TEST(IncrementalCli, VerifyChecksTheChain) {
  Chain chain;
  const auto good = run_cli({"verify", chain.file(2)});
  EXPECT_EQ(good.exit_code, 0) << good.err;
  EXPECT_NE(good.out.find("2 tensors (1 read from 1 files of its chain), checksums verified"), std::string::npos)
      << good.out;

  ckpt::test::flip_byte(chain.file(0), -200);  // inside "frozen", stored first
  const auto bad = run_cli({"verify", chain.file(2)});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("CORRUPT  [ckpt.integrity_error.301] file '" + chain.file(0) + "': tensor 'frozen'"),
            std::string::npos)
      << bad.out;

  std::filesystem::remove(chain.file(0));
  const auto missing = run_cli({"verify", chain.file(2)});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.out.find("CORRUPT  [ckpt.io_error.101] file '" + chain.file(0) + "'"), std::string::npos)
      << missing.out;
}

TEST(IncrementalCli, ConvertMaterializesASelfContainedFile) {
  Chain chain;
  const std::string output = chain.dir.file("whole.safetensors");
  const auto result = run_cli({"convert", chain.file(2), output});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  for (int step = 0; step < 3; ++step) std::filesystem::remove(chain.file(step));
  const ckpt::Reader reader(output);
  EXPECT_EQ(reader.chain_depth(), 0u);
  EXPECT_EQ(reader.format_version(), 2);
  EXPECT_EQ(reader.find("frozen")->stored_in, "");
  const ckpt::Tensor frozen = reader.tensor("frozen");
  EXPECT_EQ(std::memcmp(frozen.data(), chain.frozen.data(), chain.frozen.size() * 4), 0);
  const ckpt::Tensor trained = reader.tensor("trained");
  EXPECT_EQ(std::memcmp(trained.data(), chain.trained.data(), chain.trained.size() * 4), 0);
  reader.verify();
}

// Two distributed checkpoint directories of one process: a/ stores both
// tensors, b/ stores "trained" (with `xor_delta`, as the XOR against a/'s)
// and references "frozen" in a/.
struct DirectoryChain {
  TempDir dir;
  std::map<std::string, ckpt::Tensor> state;
  explicit DirectoryChain(bool xor_delta = false) {
    std::vector<float> frozen(5000, 0.25f), trained(10, 1.0f);
    state["frozen"] = ckpt::Tensor::copy_of(ckpt::TensorView(frozen.data(), {5000}));
    ckpt::SingleProcessCommunicator one;
    ckpt::DistributedOptions options;
    options.save.incremental.content_hashes = true;
    options.save.incremental.xor_delta = xor_delta;
    for (const char* name : {"a", "b"}) {
      trained[0] += 1;
      state["trained"] = ckpt::Tensor::copy_of(ckpt::TensorView(trained.data(), {10}));
      ckpt::DistributedCheckpoint<std::map<std::string, ckpt::Tensor>>(one, options).save(dir.file(name), 1, state);
      options.save.incremental.parent = dir.file(name);
    }
  }
  std::string parent_file() const { return dir.file("a") + "/model-00001-of-00001.safetensors"; }

  // Damages byte `offset` of a/'s file, inside `tensor`: verifying b/ fails naming it.
  void expect_verify_names_damaged_parent(std::int64_t offset, const std::string& tensor) const {
    ckpt::test::flip_byte(parent_file(), offset);
    const auto bad = run_cli({"verify", dir.file("b")});
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.out.find("CORRUPT  [ckpt.integrity_error.301] file '"), std::string::npos) << bad.out;
    EXPECT_NE(bad.out.find("a/model-00001-of-00001.safetensors': tensor '" + tensor + "'"), std::string::npos)
        << bad.out;
  }

  // The file `ckpt convert` made of b/ holds b/'s state, stored in full, and
  // needs neither directory.
  void expect_converted_holds_the_state(const std::string& output) const {
    std::filesystem::remove_all(dir.file("a"));
    const ckpt::Reader reader(output);
    EXPECT_EQ(reader.chain_depth(), 0u);
    for (const char* name : {"frozen", "trained"}) {
      EXPECT_EQ(reader.find(name)->stored_in, "");
      EXPECT_EQ(reader.find(name)->codec, "raw");
      const ckpt::Tensor tensor = reader.tensor(name);
      ASSERT_EQ(tensor.nbytes(), state.at(name).nbytes());
      EXPECT_EQ(std::memcmp(tensor.data(), state.at(name).data(), tensor.nbytes()), 0) << name;
    }
  }
};

TEST(IncrementalCli, DirectoryChainInfoVerifyAndConvert) {
  DirectoryChain chain;
  const auto info = run_cli({"info", chain.dir.file("b")});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("chain:     depth 1, parent ../a; 1 pieces referenced, read from ../a"), std::string::npos)
      << info.out;
  const auto json = run_cli({"info", chain.dir.file("b"), "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json report = nlohmann::json::parse(json.out);
  EXPECT_EQ(report["format_version"], 2);
  EXPECT_EQ(report["chain"]["sources"], nlohmann::json::array({"../a"}));
  EXPECT_EQ(report["stored_bytes"], 40);

  const std::string output = chain.dir.file("whole.safetensors");
  ASSERT_EQ(run_cli({"convert", chain.dir.file("b"), output}).exit_code, 0);
  const auto good = run_cli({"verify", chain.dir.file("b")});
  EXPECT_EQ(good.exit_code, 0) << good.out << good.err;

  chain.expect_verify_names_damaged_parent(-200, "frozen");  // stored first in a/
  chain.expect_converted_holds_the_state(output);
}

// The tool on a directory whose rank file stores an xor-delta piece: verify
// reads its base through the parent's file, convert decodes it, and a
// damaged base is reported naming the parent's file.
TEST(IncrementalCli, DirectoryChainWithXorDeltaVerifyAndConvert) {
  DirectoryChain chain(true);
  const std::string child_file = chain.dir.file("b") + "/model-00001-of-00001.safetensors";
  EXPECT_EQ(ckpt::Reader(child_file).find("trained")->codec, "xor-delta");
  const auto info = run_cli({"info", chain.dir.file("b")});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("chain:     depth 1, parent ../a; 1 pieces referenced, read from ../a"), std::string::npos)
      << info.out;
  const auto good = run_cli({"verify", chain.dir.file("b")});
  EXPECT_EQ(good.exit_code, 0) << good.out << good.err;
  const std::string output = chain.dir.file("whole.safetensors");
  ASSERT_EQ(run_cli({"convert", chain.dir.file("b"), output}).exit_code, 0);

  chain.expect_verify_names_damaged_parent(-1, "trained");  // stored last in a/: the base
  chain.expect_converted_holds_the_state(output);
}

}  // namespace
