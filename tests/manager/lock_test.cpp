#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt/detail/os/directory_lock.hpp"
#include "support/expect_error.hpp"
#include "support/temp_dir.hpp"

namespace {

using ckpt::detail::DirectoryLock;

// Runs `body` in a child process that holds the lock until the parent closes `release`.
class LockingChild {
 public:
  explicit LockingChild(const std::string& directory) {
    int ready[2], release[2];
    if (::pipe(ready) != 0 || ::pipe(release) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      ::close(release[1]);
      try {
        DirectoryLock lock(directory);
        char byte = 1;
        if (::write(ready[1], &byte, 1) != 1) ::_exit(2);
        ::read(release[0], &byte, 1);  // returns when the parent closes its end
      } catch (...) {
        ::_exit(1);
      }
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(release[0]);
    release_ = release[1];
    char byte = 0;
    locked_ = ::read(ready[0], &byte, 1) == 1;
    ::close(ready[0]);
  }
  ~LockingChild() {
    ::close(release_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  pid_t pid() const { return pid_; }
  bool locked() const { return locked_; }

 private:
  pid_t pid_ = -1;
  int release_ = -1;
  bool locked_ = false;
};

TEST(DirectoryLock, SecondWriterInAnotherProcessGetsStateLockedNamingDirectoryAndPid) {
  ckpt::test::TempDir directory;
  LockingChild child(directory.path());
  ASSERT_TRUE(child.locked());
  try {
    DirectoryLock second(directory.path());
    FAIL() << "a second lock on the same directory succeeded";
  } catch (const ckpt::StateError& error) {
    EXPECT_EQ(error.id(), ckpt::ErrorId::state_locked);
    const std::string message = error.what();
    EXPECT_NE(message.find("'" + directory.path() + "'"), std::string::npos) << message;
    EXPECT_NE(message.find("pid " + std::to_string(child.pid())), std::string::npos) << message;
  }
}

TEST(DirectoryLock, ReleasedWhenTheHolderGoesAway) {
  ckpt::test::TempDir directory;
  {
    LockingChild child(directory.path());
    ASSERT_TRUE(child.locked()) << "the child never held the lock, so its release proves nothing";
  }
  EXPECT_NO_THROW(DirectoryLock lock(directory.path()));
  { DirectoryLock first(directory.path()); }
  EXPECT_NO_THROW(DirectoryLock again(directory.path()));
}

TEST(DirectoryLock, SecondLockInTheSameProcessAlsoFails) {
  ckpt::test::TempDir directory;
  DirectoryLock first(directory.path());
  ckpt::test::expect_error<ckpt::StateError>(
      [&] { DirectoryLock second(directory.path()); }, ckpt::ErrorId::state_locked,
      {"'" + directory.path() + "'", "pid " + std::to_string(::getpid()), "expected one writer per directory"});
}

TEST(DirectoryLock, LockFileIsADotfile) {
  ckpt::test::TempDir directory;
  DirectoryLock lock(directory.path());
  EXPECT_EQ(directory.names(), std::vector<std::string>{".ckpt.lock"});
}

}  // namespace
