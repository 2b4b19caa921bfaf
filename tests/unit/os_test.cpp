// The OS layer (daemon/os): owning fds, the atomic file writer, append files
// and the clock. No root: everything happens in a fresh temp directory.
#include "os/clock.h"
#include "os/error.h"
#include "os/fd.h"
#include "os/file.h"
#include "os/logging.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace nettally {
namespace {
namespace fs = std::filesystem;

class OsTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/nettally-os-test-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { fs::remove_all(dir_); }

    static std::string slurp(const fs::path& p) {
        std::ifstream in(p, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    static mode_t mode_of(const fs::path& p) {
        struct stat st {};
        EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
        return st.st_mode & 07777;
    }
    static bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

    fs::path dir_;
};

TEST_F(OsTest, FdClosesInItsDestructor) {
    int raw = -1;
    {
        Fd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        raw = fd.get();
        ASSERT_GE(raw, 0);
        EXPECT_TRUE(fd);
        EXPECT_TRUE(fd_open(raw));
    }
    EXPECT_FALSE(fd_open(raw));
}

TEST_F(OsTest, FdMovesOwnershipAndReleases) {
    Fd a(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    const int raw = a.get();
    Fd b(std::move(a));
    EXPECT_EQ(a.get(), -1);
    EXPECT_FALSE(a);
    EXPECT_EQ(b.get(), raw);
    Fd c;
    c = std::move(b);
    EXPECT_EQ(c.get(), raw);
    EXPECT_TRUE(fd_open(raw));
    const int released = c.release();
    EXPECT_EQ(released, raw);
    EXPECT_FALSE(c);
    EXPECT_TRUE(fd_open(raw)); // released: the caller owns it now
    ::close(released);
}

TEST_F(OsTest, FdMoveAssignmentClosesTheOldOne) {
    Fd a(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    Fd b(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    const int old_a = a.get();
    const int raw_b = b.get();
    a = std::move(b);
    EXPECT_EQ(a.get(), raw_b);
    EXPECT_FALSE(fd_open(old_a));
}

TEST_F(OsTest, AtomicWriteCreatesAndReplacesContent) {
    const fs::path p = dir_ / "state.json";
    write_file_atomic(p, "first version, longer than the second\n", 0640);
    EXPECT_EQ(slurp(p), "first version, longer than the second\n");
    write_file_atomic(p, "second\n", 0640);
    EXPECT_EQ(slurp(p), "second\n");
    EXPECT_FALSE(fs::exists(atomic_temp_path(p))) << "no temp file left behind";
    EXPECT_EQ(atomic_temp_path(p), dir_ / ".state.json.tmp");
}

TEST_F(OsTest, AtomicWriteAppliesTheModeWhateverTheUmask) {
    const fs::path p = dir_ / "secret.json";
    const mode_t old = ::umask(0);
    write_file_atomic(p, "x", 0600);
    EXPECT_EQ(mode_of(p), 0600u);
    ::umask(0077);
    write_file_atomic(p, "y", 0644);
    ::umask(old);
    EXPECT_EQ(mode_of(p), 0644u);
}

TEST_F(OsTest, AtomicWriteKeepsThePreviousCopy) {
    const fs::path p = dir_ / "state.json";
    const fs::path prev = dir_ / "state.json.prev";
    write_file_atomic(p, "one", 0640, prev);
    EXPECT_FALSE(fs::exists(prev)) << "nothing to keep the first time";
    write_file_atomic(p, "two", 0640, prev);
    EXPECT_EQ(slurp(p), "two");
    EXPECT_EQ(slurp(prev), "one");
}

TEST_F(OsTest, AtomicWriteDoesNotFollowASymlinkAtTheTempName) {
    const fs::path victim = dir_ / "victim";
    { std::ofstream(victim) << "untouched"; }
    const fs::path p = dir_ / "target.json";
    fs::create_symlink(victim, atomic_temp_path(p));
    write_file_atomic(p, "new content", 0640);
    EXPECT_EQ(slurp(victim), "untouched");
    EXPECT_EQ(slurp(p), "new content");
    EXPECT_FALSE(fs::is_symlink(p));
}

TEST_F(OsTest, AtomicWriteReplacesASymlinkAtTheTargetInsteadOfWritingThroughIt) {
    const fs::path victim = dir_ / "victim";
    { std::ofstream(victim) << "untouched"; }
    const fs::path p = dir_ / "target.json";
    fs::create_symlink(victim, p);
    write_file_atomic(p, "new content", 0600);
    EXPECT_EQ(slurp(victim), "untouched");
    EXPECT_FALSE(fs::is_symlink(p));
    EXPECT_EQ(slurp(p), "new content");
    EXPECT_EQ(mode_of(p), 0600u);
}

TEST_F(OsTest, AtomicWriteReplacesAStaleTempFile) {
    const fs::path p = dir_ / "cursor.json";
    { std::ofstream(atomic_temp_path(p)) << "left by a crash"; }
    write_file_atomic(p, "fresh", 0640);
    EXPECT_EQ(slurp(p), "fresh");
    EXPECT_FALSE(fs::exists(atomic_temp_path(p)));
}

TEST_F(OsTest, AtomicWriteErrorsCarryErrnoAndThePath) {
    const fs::path p = dir_ / "missing-dir" / "state.json";
    try {
        write_file_atomic(p, "x", 0640);
        FAIL() << "expected SysError";
    } catch (const SysError& e) {
        EXPECT_EQ(e.err(), ENOENT);
        EXPECT_NE(std::string(e.what()).find(atomic_temp_path(p).string()), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("creating"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(p));
}

TEST_F(OsTest, AtomicWriteOntoADirectoryFailsAndLeavesNoTemp) {
    const fs::path p = dir_ / "occupied";
    fs::create_directory(p);
    fs::create_directory(p / "child"); // a non-empty directory cannot be replaced by rename
    try {
        write_file_atomic(p, "x", 0640);
        FAIL() << "expected SysError";
    } catch (const SysError& e) {
        EXPECT_NE(e.err(), 0);
        EXPECT_NE(std::string(e.what()).find("renaming"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(atomic_temp_path(p)));
}

TEST_F(OsTest, AppendFileAppendsSyncsAndCloses) {
    const fs::path p = dir_ / "flows.jsonl.open";
    AppendFile f = AppendFile::create(p, 0640);
    EXPECT_TRUE(f.is_open());
    EXPECT_EQ(f.path(), p);
    f.append("a\n");
    f.append("b\n");
    f.datasync();
    EXPECT_EQ(slurp(p), "a\nb\n");
    AppendFile moved = std::move(f);
    moved.append("c\n");
    moved.close();
    EXPECT_FALSE(moved.is_open());
    EXPECT_EQ(slurp(p), "a\nb\nc\n");
    try {
        moved.append("d\n");
        FAIL() << "expected SysError";
    } catch (const SysError& e) {
        EXPECT_EQ(e.err(), EBADF);
        EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    }
}

TEST_F(OsTest, AppendFileRefusesASymlink) {
    const fs::path victim = dir_ / "victim";
    { std::ofstream(victim) << "untouched"; }
    const fs::path p = dir_ / "f.open";
    fs::create_symlink(victim, p);
    try {
        AppendFile::create(p, 0640);
        FAIL() << "expected SysError";
    } catch (const SysError& e) {
        EXPECT_EQ(e.err(), ELOOP);
        EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    }
    EXPECT_EQ(slurp(victim), "untouched");
}

TEST_F(OsTest, TruncateAndSync) {
    const fs::path p = dir_ / "f";
    write_file_atomic(p, "0123456789", 0640);
    truncate_file(p, 4);
    sync_path(p);
    sync_path(dir_);
    EXPECT_EQ(slurp(p), "0123");
    EXPECT_THROW(sync_path(dir_ / "nope"), SysError);
    try {
        truncate_file(dir_ / "nope", 0);
        FAIL() << "expected SysError";
    } catch (const SysError& e) {
        EXPECT_EQ(e.err(), ENOENT);
    }
    Fd d = open_directory(dir_);
    EXPECT_TRUE(d);
    EXPECT_THROW(open_directory(p), SysError);
}

TEST_F(OsTest, ClocksAdvanceAndRealtimeIsWallTime) {
    const uint64_t m1 = monotonic_us();
    const uint64_t k1 = kernel_stamp_ns();
    const uint64_t r = realtime_us();
    EXPECT_GT(r, 1577836800ull * 1000000u); // after 2020-01-01
    ::usleep(2000);
    EXPECT_GE(monotonic_us() - m1, 1000u);
    EXPECT_GE(kernel_stamp_ns() - k1, 1000000u);
    EXPECT_LE(k1 / 1000, monotonic_us()) << "the kernel stamps' clock is CLOCK_MONOTONIC";
}

TEST(LogLimiter, BurstPerIntervalThenCountsWhatWasHeldBack) {
    LogLimiter l(2, 1000);
    EXPECT_EQ(l.allow(0), 0u);
    EXPECT_EQ(l.allow(10), 0u);
    EXPECT_FALSE(l.allow(20));
    EXPECT_FALSE(l.allow(999));
    EXPECT_EQ(l.allow(1000), 2u) << "a new window; two were held back";
    EXPECT_EQ(l.allow(1001), 0u);
    EXPECT_FALSE(l.allow(1002));
    EXPECT_EQ(l.allow(5000), 1u);
}

} // namespace
} // namespace nettally
