#pragma once

// Power loss, not just kill -9: a detail::FileSystem that records the changes
// a save makes under one directory (RecordingFileSystem), and the crash states
// a POSIX file system may leave of them (CrashStates). docs/reliability.md,
// "Crash states", describes the model and what it leaves out.
//
// The model, for the crash right before each change of the log:
// - a file's bytes written since its last fsync may each be lost, kept, or
//   torn: every 512-byte sector of such a write persists or not on its own
//   (a lost sector reads as what the durable file held there, or zeros);
//   a pending ftruncate is applied or not;
// - a create, rename, unlink, mkdir or rmdir whose directory was not fsynced
//   since is applied or not, each on its own, in log order;
// - everything before the last fsync of a file (its data) or of a directory
//   (its entries) is there.
// The recorded root itself is durable and empty when recording starts.

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ckpt/detail/os/file_system.hpp"

namespace ckpt::test {

// One change to the recorded tree. Paths are relative to the root ("" is the root).
struct FsChange {
  enum class Kind { create, write, truncate, fsync, rename, unlink, mkdir, rmdir, mark };
  explicit FsChange(Kind change_kind, int changed_inode = -1, int parent = -1)
      : kind(change_kind), inode(changed_inode), directory(parent) {}
  Kind kind;
  int inode;                 // the file or directory changed (fsync: the one synced)
  int directory;             // the directory whose entry changes (namespace changes)
  std::string path;          // rename: the source; mark: its label
  std::string target;        // rename: the destination
  std::uint64_t offset = 0;  // write: where; truncate: the new size
  std::string data;          // write: the bytes
};

inline std::string parent_path_of(const std::string& relative) {
  const std::size_t slash = relative.rfind('/');
  return slash == std::string::npos ? std::string() : relative.substr(0, slash);
}

// Forwards to POSIX and logs what changes under `root` (which must exist and
// be empty), tracking the names and inodes the calls create.
class RecordingFileSystem : public detail::FileSystem {
 public:
  explicit RecordingFileSystem(std::string root) : root_(std::move(root)) {
    names_[""] = 0;
    directories_.insert(0);
  }

  // Records a point of the test's own (a save begun or returned) in the log.
  void mark(const std::string& label) {
    std::lock_guard<std::mutex> lock(mutex_);
    FsChange change(FsChange::Kind::mark);
    change.path = label;
    log_.push_back(change);
  }
  std::vector<FsChange> log() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return log_;
  }
  bool is_directory_inode(int inode) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return directories_.count(inode) != 0;
  }
  std::set<int> directory_inodes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return directories_;
  }

  // The real call runs under the lock, so that the log's order is the order
  // in which the kernel saw the calls, whatever thread made them.
  int open(const char* path, int flags, unsigned mode) override {
    std::lock_guard<std::mutex> lock(mutex_);
    const int fd = detail::FileSystem::open(path, flags, mode);
    std::string relative;
    if (fd < 0 || !inside(path, relative)) return fd;
    auto named = names_.find(relative);
    if (named == names_.end()) {
      if ((flags & O_CREAT) == 0) throw std::logic_error("recorder: '" + relative + "' opened, never created");
      const int inode = next_inode_++;
      log_.push_back(namespace_change(FsChange::Kind::create, inode, relative));
      named = names_.emplace(relative, inode).first;
    } else if ((flags & O_TRUNC) != 0) {
      FsChange change(FsChange::Kind::truncate, named->second);
      log_.push_back(change);
    }
    descriptors_[fd] = named->second;
    return fd;
  }
  int close(int fd) override {
    std::lock_guard<std::mutex> lock(mutex_);
    descriptors_.erase(fd);
    return detail::FileSystem::close(fd);
  }
  long pwrite(int fd, const void* data, std::size_t size, std::uint64_t offset) override {
    std::lock_guard<std::mutex> lock(mutex_);
    const long written = detail::FileSystem::pwrite(fd, data, size, offset);
    const auto descriptor = descriptors_.find(fd);
    if (written > 0 && descriptor != descriptors_.end()) {
      FsChange change(FsChange::Kind::write, descriptor->second);
      change.offset = offset;
      change.data.assign(static_cast<const char*>(data), static_cast<std::size_t>(written));
      log_.push_back(std::move(change));
    }
    return written;
  }
  int ftruncate(int fd, std::uint64_t size) override {
    std::lock_guard<std::mutex> lock(mutex_);
    const int result = detail::FileSystem::ftruncate(fd, size);
    const auto descriptor = descriptors_.find(fd);
    if (result == 0 && descriptor != descriptors_.end()) {
      FsChange change(FsChange::Kind::truncate, descriptor->second);
      change.offset = size;
      log_.push_back(change);
    }
    return result;
  }
  int fsync(int fd) override {
    std::lock_guard<std::mutex> lock(mutex_);
    const int result = detail::FileSystem::fsync(fd);
    const auto descriptor = descriptors_.find(fd);
    if (result == 0 && descriptor != descriptors_.end())
      log_.push_back(FsChange(FsChange::Kind::fsync, descriptor->second));
    return result;
  }
  int rename(const char* from, const char* to) override {
    std::lock_guard<std::mutex> lock(mutex_);
    const int result = detail::FileSystem::rename(from, to);
    std::string source, target;
    if (result != 0 || !inside(from, source) || !inside(to, target)) return result;
    if (parent_path_of(source) != parent_path_of(target)) {
      throw std::logic_error("recorder: a rename across directories is outside the model");
    }
    FsChange change = namespace_change(FsChange::Kind::rename, names_.at(source), source);
    change.target = target;
    log_.push_back(change);
    names_[target] = names_.at(source);
    names_.erase(source);
    return result;
  }
  int unlink(const char* path) override { return remove(path, FsChange::Kind::unlink); }
  int rmdir(const char* path) override { return remove(path, FsChange::Kind::rmdir); }
  int mkdir(const char* path, unsigned mode) override {
    std::lock_guard<std::mutex> lock(mutex_);
    const int result = detail::FileSystem::mkdir(path, mode);
    std::string relative;
    if (result != 0 || !inside(path, relative)) return result;
    const int inode = next_inode_++;
    directories_.insert(inode);
    log_.push_back(namespace_change(FsChange::Kind::mkdir, inode, relative));
    names_[relative] = inode;
    return result;
  }

 private:
  int remove(const char* path, FsChange::Kind kind) {
    std::lock_guard<std::mutex> lock(mutex_);
    const int result =
        kind == FsChange::Kind::unlink ? detail::FileSystem::unlink(path) : detail::FileSystem::rmdir(path);
    std::string relative;
    if (result != 0 || !inside(path, relative)) return result;
    log_.push_back(namespace_change(kind, names_.at(relative), relative));
    names_.erase(relative);
    return result;
  }
  FsChange namespace_change(FsChange::Kind kind, int inode, const std::string& relative) const {
    FsChange change(kind, inode, names_.at(parent_path_of(relative)));
    change.path = relative;
    return change;
  }
  bool inside(const std::string& path, std::string& relative) const {
    if (path == root_) {
      relative.clear();
      return true;
    }
    if (path.size() <= root_.size() || path.compare(0, root_.size(), root_) != 0 || path[root_.size()] != '/') {
      return false;
    }
    relative = path.substr(root_.size() + 1);
    return true;
  }

  mutable std::mutex mutex_;
  std::string root_;
  std::vector<FsChange> log_;
  std::map<std::string, int> names_;  // what the kernel holds now, by relative path
  std::map<int, int> descriptors_;    // fd -> inode
  std::set<int> directories_;
  int next_inode_ = 1;
};

// How many states to explore per crash point: the namespace choices (subsets
// of the undurable directory changes) and, for each, the content choices
// (sectors of undurable writes to files a name reaches). Each is enumerated
// when its count is at most the limit, and sampled otherwise.
struct CrashSpace {
  std::uint64_t namespace_choices = 4096;
  std::uint64_t content_choices = 256;
  std::uint64_t seed = 20261130;
};

// What a run over a log explored.
struct CrashStateCounts {
  std::uint64_t crash_points = 0;
  std::uint64_t states = 0;    // distinct directories materialized and checked
  long double exhaustive = 0;  // how many states the model allows in all (before removing duplicates)
  bool sampled = false;        // some crash point had more choices than the space allows
  std::uint64_t violations = 0;
  std::vector<std::string> first_violations;
};

// The labels of the marks before the crash point.
using Marks = std::vector<std::string>;

// Checks one materialized crash state; returns "" when it keeps the promise,
// or what is wrong.
using CrashCheck = std::function<std::string(const std::string& directory, const Marks& marks)>;

class CrashStates {
 public:
  static constexpr std::uint64_t sector = 512;

  CrashStates(std::vector<FsChange> log, std::set<int> directory_inodes)
      : log_(std::move(log)), directories_(std::move(directory_inodes)) {}

  // Materializes every explored state of every crash point under `scratch`
  // (emptied before each) and runs `check` on it.
  CrashStateCounts explore(const std::string& scratch, const CrashSpace& space, const CrashCheck& check) {
    CrashStateCounts counts;
    std::mt19937_64 random(space.seed);
    // A state is checked again when marks passed since: the same files may
    // keep the promise before a save returned and break it after.
    std::set<std::pair<std::size_t, std::size_t>> seen;  // (marks, hash of the tree)
    Marks marks;
    // The crash comes right before change `point`; point == size: after the last.
    for (std::size_t point = 0; point <= log_.size(); ++point) {
      if (point > 0 && log_[point - 1].kind == FsChange::Kind::mark) {
        marks.push_back(log_[point - 1].path);
        continue;  // not a change: the same crash point as before the mark
      }
      ++counts.crash_points;
      const Durability durability = durability_before(point);
      const std::size_t pending = durability.pending_namespace.size();
      const std::vector<std::vector<bool>> namespace_picks =
          choices(pending, space.namespace_choices, random, counts.sampled);
      const long double namespace_total = std::pow(2.0L, static_cast<long double>(pending));
      long double content_sum = 0;
      for (const std::vector<bool>& applied : namespace_picks) {
        const std::map<std::string, int> names = names_after(point, durability, applied);
        std::vector<std::size_t> pieces = pending_pieces(point, durability, names);
        content_sum += std::pow(2.0L, static_cast<long double>(pieces.size()));
        for (const std::vector<bool>& kept : choices(pieces.size(), space.content_choices, random, counts.sampled)) {
          const std::map<std::string, std::string> tree = materialize_in_memory(point, durability, names, pieces, kept);
          if (!seen.emplace(marks.size(), hash_of(tree)).second) continue;
          ++counts.states;
          write_tree(scratch, tree);
          const std::string problem = check(scratch, marks);
          if (!problem.empty()) {
            ++counts.violations;
            if (counts.first_violations.size() < 5) {
              counts.first_violations.push_back("crash before change " + std::to_string(point) + " of " +
                                                std::to_string(log_.size()) + ": " + problem);
            }
          }
        }
      }
      // The content count of the namespace choices not enumerated is taken as their mean.
      counts.exhaustive += content_sum * namespace_total / static_cast<long double>(namespace_picks.size());
    }
    return counts;
  }

 private:
  // Which changes before a crash point are durable, and which are not.
  struct Durability {
    std::vector<std::size_t> pending_namespace;  // log indices, in order
    std::set<std::size_t> durable_namespace;
    std::map<int, std::size_t> last_file_sync;  // inode -> index of its last fsync
  };

  bool is_namespace(FsChange::Kind kind) const {
    return kind == FsChange::Kind::create || kind == FsChange::Kind::rename || kind == FsChange::Kind::unlink ||
           kind == FsChange::Kind::mkdir || kind == FsChange::Kind::rmdir;
  }

  Durability durability_before(std::size_t point) const {
    Durability durability;
    std::map<int, std::vector<std::size_t>> unsynced;  // directory inode -> its namespace changes
    for (std::size_t i = 0; i < point; ++i) {
      const FsChange& change = log_[i];
      if (is_namespace(change.kind)) unsynced[change.directory].push_back(i);
      if (change.kind != FsChange::Kind::fsync) continue;
      if (directories_.count(change.inode) != 0) {
        for (std::size_t made_durable : unsynced[change.inode]) durability.durable_namespace.insert(made_durable);
        unsynced.erase(change.inode);
      } else {
        durability.last_file_sync[change.inode] = i;
      }
    }
    for (const auto& [directory, changes] : unsynced) {
      durability.pending_namespace.insert(durability.pending_namespace.end(), changes.begin(), changes.end());
    }
    std::sort(durability.pending_namespace.begin(), durability.pending_namespace.end());
    return durability;
  }

  // Path -> inode after the durable namespace changes and the `applied` pending ones.
  std::map<std::string, int> names_after(std::size_t point, const Durability& durability,
                                         const std::vector<bool>& applied) const {
    std::set<std::size_t> chosen = durability.durable_namespace;
    for (std::size_t i = 0; i < applied.size(); ++i) {
      if (applied[i]) chosen.insert(durability.pending_namespace[i]);
    }
    std::map<std::string, int> names{{"", 0}};
    for (std::size_t i = 0; i < point; ++i) {
      if (chosen.count(i) == 0) continue;
      const FsChange& change = log_[i];
      switch (change.kind) {
        case FsChange::Kind::create:
        case FsChange::Kind::mkdir: names[change.path] = change.inode; break;
        case FsChange::Kind::rename:
          names.erase(change.path);
          names[change.target] = change.inode;
          break;
        case FsChange::Kind::unlink:
        case FsChange::Kind::rmdir: names.erase(change.path); break;
        default: break;
      }
    }
    // An entry of a directory that is not there is not reachable.
    for (auto it = names.begin(); it != names.end();) {
      const auto parent = names.find(parent_path_of(it->first));
      const bool reachable = it->first.empty() || (parent != names.end() && directories_.count(parent->second) != 0);
      it = reachable ? std::next(it) : names.erase(it);
    }
    return names;
  }

  // The undurable writes and truncations of the files `names` reaches, cut
  // into sectors: one entry per piece, as (log index << 32 | piece number).
  std::vector<std::size_t> pending_pieces(std::size_t point, const Durability& durability,
                                          const std::map<std::string, int>& names) const {
    std::set<int> visible;
    for (const auto& [path, inode] : names) visible.insert(inode);
    std::vector<std::size_t> pieces;
    for (std::size_t i = 0; i < point; ++i) {
      const FsChange& change = log_[i];
      if ((change.kind != FsChange::Kind::write && change.kind != FsChange::Kind::truncate) ||
          visible.count(change.inode) == 0 || !after_last_sync(durability, change.inode, i)) {
        continue;
      }
      const std::size_t count = change.kind == FsChange::Kind::write ? sectors_of(change).size() : 1;
      for (std::size_t piece = 0; piece < count; ++piece) pieces.push_back(i << 32 | piece);
    }
    return pieces;
  }

  static bool after_last_sync(const Durability& durability, int inode, std::size_t index) {
    const auto sync = durability.last_file_sync.find(inode);
    return sync == durability.last_file_sync.end() || index > sync->second;
  }

  // [begin, end) offsets of the sector-aligned pieces of a write.
  static std::vector<std::pair<std::uint64_t, std::uint64_t>> sectors_of(const FsChange& write) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> pieces;
    const std::uint64_t end = write.offset + write.data.size();
    for (std::uint64_t begin = write.offset; begin < end;) {
      const std::uint64_t next = std::min(end, (begin / sector + 1) * sector);
      pieces.emplace_back(begin, next);
      begin = next;
    }
    return pieces;
  }

  static void apply_bytes(std::string& content, std::uint64_t offset, const char* data, std::uint64_t size) {
    if (content.size() < offset + size) content.resize(offset + size, '\0');
    content.replace(offset, size, data, size);
  }

  // Path -> content ("/" + nothing marks a directory) of one crash state.
  std::map<std::string, std::string> materialize_in_memory(std::size_t point, const Durability& durability,
                                                           const std::map<std::string, int>& names,
                                                           const std::vector<std::size_t>& pieces,
                                                           const std::vector<bool>& kept) const {
    std::set<std::size_t> kept_pieces;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      if (kept[i]) kept_pieces.insert(pieces[i]);
    }
    std::map<int, std::string> contents;
    for (std::size_t i = 0; i < point; ++i) {
      const FsChange& change = log_[i];
      if (change.kind != FsChange::Kind::write && change.kind != FsChange::Kind::truncate) continue;
      const bool durable = !after_last_sync(durability, change.inode, i);
      std::string& content = contents[change.inode];
      if (change.kind == FsChange::Kind::truncate) {
        if (durable || kept_pieces.count(i << 32) != 0) content.resize(change.offset, '\0');
        continue;
      }
      const auto sectors = sectors_of(change);
      for (std::size_t piece = 0; piece < sectors.size(); ++piece) {
        if (!durable && kept_pieces.count(i << 32 | piece) == 0) continue;
        const auto [begin, end] = sectors[piece];
        apply_bytes(content, begin, change.data.data() + (begin - change.offset), end - begin);
      }
    }
    std::map<std::string, std::string> tree;
    for (const auto& [path, inode] : names) {
      if (path.empty()) continue;
      tree[path] = directories_.count(inode) != 0 ? std::string("/") : "=" + contents[inode];
    }
    return tree;
  }

  static std::size_t hash_of(const std::map<std::string, std::string>& tree) {
    std::string all;
    for (const auto& [path, content] : tree) all += path + '\0' + std::to_string(content.size()) + '\0' + content;
    return std::hash<std::string>{}(all);
  }

  static void write_tree(const std::string& scratch, const std::map<std::string, std::string>& tree) {
    std::filesystem::remove_all(scratch);
    std::filesystem::create_directories(scratch);
    for (const auto& [path, content] : tree) {  // sorted: a directory comes before its entries
      const std::string full = scratch + "/" + path;
      if (content == "/") {
        std::filesystem::create_directory(full);
        continue;
      }
      std::ofstream out(full, std::ios::binary);
      out.write(content.data() + 1, static_cast<std::streamsize>(content.size() - 1));
      if (!out) throw std::runtime_error("cannot materialize '" + full + "'");
    }
  }

  // All 2^n subsets of n choices when there are at most `limit`; otherwise
  // none, all, and random ones up to `limit`.
  static std::vector<std::vector<bool>> choices(std::size_t n, std::uint64_t limit, std::mt19937_64& random,
                                                bool& sampled) {
    std::vector<std::vector<bool>> picks;
    if (n < 63 && (std::uint64_t(1) << n) <= limit) {
      for (std::uint64_t bits = 0; bits < (std::uint64_t(1) << n); ++bits) {
        std::vector<bool> pick(n);
        for (std::size_t i = 0; i < n; ++i) pick[i] = (bits >> i & 1) != 0;
        picks.push_back(std::move(pick));
      }
      return picks;
    }
    sampled = true;
    picks.emplace_back(n, false);
    picks.emplace_back(n, true);
    while (picks.size() < limit) {
      std::vector<bool> pick(n);
      for (std::size_t i = 0; i < n; ++i) pick[i] = (random() & 1) != 0;
      picks.push_back(std::move(pick));
    }
    return picks;
  }

  std::vector<FsChange> log_;
  std::set<int> directories_;
};

}  // namespace ckpt::test
