// Datapath owns the BPF skeleton: open/configure/load in the constructor,
// TC attach per interface, batched per-CPU map reads, and detach + destroy in
// the destructor. It is the only code that talks to the kernel about BPF.
#pragma once

#include "core/collector.h"
#include "kernel/classes.h"
#include "kernel/probe.h"
#include "os/error.h"
#include "os/fd.h"

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

struct nettally_bpf;
struct bpf_map;
struct bpf_program;

namespace nettally {

class FlowEvictor;

// The nettally object opened for this kernel: its XDP programs left out of the load where
// xdp_unavailable() (kernel/probe.h) says why (mode: xdp is then refused). nullptr with errno on failure.
nettally_bpf* open_datapath_object();

// The programs one interface needs are chosen by its role, its mode, and whether the link has no
// Ethernet header (l3: programs that start at IP; known once the link is found).
struct AttachKind {
    bool lan = true;
    bool xdp = false;
    bool l3 = false;
};

struct DatapathOptions {
    uint32_t max_flows = NT_DEFAULT_MAX_FLOWS;
    uint32_t max_hosts = NT_DEFAULT_MAX_HOSTS;
    bool count_hosts = true;
    // Counting maps are pinned here (inside a bpffs) and reused by the next
    // start, so counts survive a daemon restart or crash.
    std::string pin_dir = "/sys/fs/bpf/nettally";
    // Finish many flows at once with the eviction program (kernel/evict.h); false: one
    // lookup-and-delete syscall per flow (what kernels without the program get; the bench
    // compares the two).
    bool batched_eviction = true;
    // Entries of the per host and class map (nt_host_cls): rules.max_host_classes, 1 without a
    // rules section (a gateway without classes pays no memory for it).
    uint32_t max_host_classes = NT_DEFAULT_MAX_HOST_CLASSES;
    // Traffic classes (a rules section in the config): false loads the programs without the
    // classifier (cfg_classes 0), which the verifier drops as dead code.
    bool classes = true;
    // The attachments whose programs load with the maps (nettallyd: its interface rules); any
    // other kind (an l3 link, a role or mode a reload brings) loads its programs at its first
    // attach, sharing every map. Each program verified costs start-up time. nullopt: every program.
    std::optional<std::vector<AttachKind>> preload;
};

// Pinned maps exist but cannot be reused (ABI or size changed): never reset
// them silently; the message says what differs and what to do.
class PinMismatch : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Datapath final : public MapReader {
public:
    explicit Datapath(const DatapathOptions& opts); // throws SysError, PinMismatch
    // Leaves programs attached and maps pinned (counting goes on while the
    // daemon is down) unless detach_all() or remove_pins() ran.
    ~Datapath() override;
    Datapath(const Datapath&) = delete;
    Datapath& operator=(const Datapath&) = delete;

    // Attaches ingress and egress programs for the role; replaces a filter a
    // previous run may have left at nettally's handle. With xdp, ingress is
    // counted at XDP (native, else generic with a warning) and egress at TC.
    // Throws SysError.
    // l3: the link has no Ethernet header (programs that start at IP).
    void attach(uint32_t ifindex, bool lan, bool xdp = false, bool l3 = false);
    void detach(uint32_t ifindex);
    void detach_all();
    // Removes nettally's filters and XDP programs from links it does not
    // account now (left by an earlier run with another config). Returns names.
    std::vector<std::string> detach_stale(const std::vector<uint32_t>& keep);
    // Drops the counters of an interface that is gone (after a final poll),
    // so an ifindex reused by a new link starts from zero.
    void forget_interface(uint32_t ifindex);
    // Unlinks the pins (uninstall): the maps die with the last reference.
    void remove_pins();
    // True when this start reused pinned maps (a restart, not a fresh boot).
    bool reused_pins() const { return reused_; }

    IfaceSnapshot read_ifaces() override;
    void read_flows(std::vector<FlowEntry>& out) override;
    std::vector<HostEntry> read_hosts() override;
    std::vector<UserEntry> read_users() override;
    UserEntry read_user_overflow() override;
    // The per-class counters (pinned, like the other counters) and their overflow.
    std::vector<ClassEntry> read_classes() override;
    Counts read_class_overflow() override;
    // The per host and class counters (pinned) and their overflow.
    std::vector<HostClassEntry> read_host_classes() override;
    HostClassEntry read_host_class_overflow() override;
    // Traffic classes (kernel/classes.h): the object's nt_cls_* tables and its nt_cls_gen.
    KernelClasses::Maps class_maps() const;

    // Subscribers (core/subscribers.h): the pinned binding trie and user names. Throw SysError.
    // Makes nt_bindings hold exactly `want` (prefix key -> user id): absent entries are added
    // before stale ones are removed, so a re-bound prefix never falls back to unbound.
    void sync_bindings(const std::map<Prefix, uint32_t>& want);
    // One prefix at a time (RADIUS, at request rate): binds it to id, or removes it. A new id for
    // a bound prefix replaces the old one in one update, so no packet finds it unbound.
    void set_binding(const Prefix& prefix, uint32_t id);
    void remove_binding(const Prefix& prefix);
    std::map<uint32_t, std::string> read_user_names() const;
    void write_user_name(uint32_t id, const std::string& name);
    // Turns the per-user counting in the programs on or off (nt_users_on).
    void set_users_on(bool on);
    // After every change of nt_bindings: the programs' per-host user caches (nt_host_val.user)
    // are stale from the next packet on. Starts at a random non-zero value per load, so a pinned
    // host entry cached under an earlier process's serial is not mistaken for a current one.
    void next_bind_serial();
    // Many keys at once go through the eviction iterator (kernel/evict.h) when the kernel
    // runs it, a few (or every key on an older kernel) one lookup-and-delete each.
    std::vector<FlowEntry> evict_flows(const std::vector<nt_flow_key>& keys) override;
    std::map<IfaceKey, EvictedSums> read_evicted() override;
    void write_evicted(const IfaceKey& key, const EvictedSums& sums) override;

    // Threshold actions (kernel/enforce.h): the unpinned nt_policy map. Throw SysError.
    void policy_put(const nt_policy_key& key, const nt_policy_val& val);
    void policy_remove(const nt_policy_key& key);
    // The entry as the kernel holds it (read under its spin lock), nullopt when absent.
    std::optional<nt_policy_val> policy_get(const nt_policy_key& key) const;
    // NT_POLICY_KIND_* bits: which kinds of keys the programs look up (0: none, no lookup).
    void set_policy_kinds(uint32_t kinds);
    // Marks a lan interface whose root qdisc is fq: throttled egress is paced there (EDT).
    void set_edt_interface(uint32_t ifindex, bool on);
    // The interfaces attached with the lan role (where actions are enforced).
    std::vector<uint32_t> lan_interfaces() const;

    bool xdp_supported() const { return xdp_supported_; }
    // The programs loaded so far (with the maps, or later for an attachment), by name, sorted.
    std::vector<std::string> loaded_programs() const;
    // True when evict_flows() takes many flows at once (the eviction program loaded).
    bool batched_eviction() const { return evictor_ != nullptr; }
    uint32_t flow_capacity() const { return max_flows_; }
    uint32_t host_capacity() const { return max_hosts_; }

private:
    nettally_bpf* skel_ = nullptr;
    int ncpus_ = 0;
    uint32_t max_flows_ = 0;
    uint32_t max_hosts_ = 0;
    struct Attachment {
        bool lan = false;
        uint32_t xdp_flags = 0; // XDP_FLAGS_*_MODE when ingress is at XDP, else 0
    };
    void attach_xdp(uint32_t ifindex, int prog_fd, Attachment& a);

    // kernel/programs.cpp. The programs an attachment of this kind runs: ingress, egress, and with
    // xdp the XDP program.
    std::vector<bpf_program*> programs_for(const AttachKind& kind) const;
    // Before the load: only these kinds' programs load with the maps.
    void preload_only(const std::vector<AttachKind>& kinds);
    // The programs' fds, loading those not loaded yet (load_late) first. Throws SysError.
    std::vector<int> program_fds(const std::vector<bpf_program*>& progs);
    // Loads programs by name in a second object that shares every map of this one, keeps their
    // fds and lets the object go.
    void load_late(const std::vector<std::string>& names);

    void pin_maps(const std::string& dir);
    // The maps pinned in pin_dir: the counters and what belongs with them.
    std::vector<bpf_map*> pinned_maps() const;

    bool xdp_supported_ = false;
    bool reused_ = false;
    bool lookup_and_delete_ok_ = true;
    std::unique_ptr<FlowEvictor> evictor_; // null: one syscall per flow
    std::string pin_dir_;
    std::map<uint32_t, Attachment> attached_;
    std::map<std::string, Fd> late_; // programs loaded after the maps: name -> fd
};

// Installs libbpf's print callback into the project logger, one level down.
void route_libbpf_logs();

} // namespace nettally
