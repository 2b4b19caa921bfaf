// Logic that used to live in the D-Bus adaptors and is now core code:
// resolving a cgroup subject given by unit name (bus/thresholds.cpp's
// AddThreshold/ModifyThreshold) and the notify-only ActionEnforcer.
#include "core/cgroups.h"
#include "core/enforce.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace nettally {
namespace {

CgroupCounts some_traffic() {
    CgroupCounts c;
    c.ingress.packets = 1;
    c.ingress.l2 = 100;
    return c;
}

TEST(CgroupSubjectPath, AUnitNameStandsForItsCgroupPath) {
    CgroupLedger l;
    l.observe(10, "/system.slice/backup.service", some_traffic(), 1);
    EXPECT_EQ(cgroup_subject_path(&l, "backup.service"), "/system.slice/backup.service");
    EXPECT_EQ(cgroup_subject_path(&l, "system.slice"), "/system.slice");
}

TEST(CgroupSubjectPath, PathsUnknownUnitsAndNoLedgerAreLeftAsGiven) {
    CgroupLedger l;
    l.observe(10, "/system.slice/backup.service", some_traffic(), 1);
    EXPECT_EQ(cgroup_subject_path(&l, "/system.slice/backup.service"), "/system.slice/backup.service");
    EXPECT_EQ(cgroup_subject_path(&l, "/elsewhere"), "/elsewhere");
    EXPECT_EQ(cgroup_subject_path(&l, "other.service"), "other.service");
    EXPECT_EQ(cgroup_subject_path(&l, ""), "");
    EXPECT_EQ(cgroup_subject_path(nullptr, "backup.service"), "backup.service");
}

TEST(NotifyOnlyEnforcer, AcceptsNotifyAndRefusesKernelActions) {
    NotifyOnlyEnforcer e;
    const Subject host{SubjectKind::Host, "192.0.2.1"};
    EXPECT_EQ(e.check(host, ActionKind::Notify, 0), "");
    EXPECT_NE(e.check(host, ActionKind::Throttle, 1000), "");
    EXPECT_NE(e.check(host, ActionKind::Block, 0), "");
    EXPECT_NO_THROW(e.apply("t", host, ActionKind::Notify, 0));
    EXPECT_THROW(e.apply("t", host, ActionKind::Block, 0), std::runtime_error);
    EXPECT_TRUE(e.active().empty());
}

} // namespace
} // namespace nettally
