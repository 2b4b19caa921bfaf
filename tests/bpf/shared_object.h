// One loaded BPF object for all the tests of a suite (a table), and the reset that gives each
// test the state the object had right after its load. Loading verifies every program: about a
// second on the build machine, about 40 s under qemu TCG (the VM suite), so a table of a hundred
// rows cannot load once per row there.
//
// The reset (ObjectState::reset) covers every map of the object: hash, LRU hash and LPM trie
// maps are emptied, arrays and per-CPU arrays zeroed, map-in-map slots cleared, and the writable
// global sections (.bss, .data) put back as they were after the load; .rodata (frozen at load)
// cannot have changed. A map of a type it does not know is a failure, never left as it was, so a
// new map cannot carry state from one row into the next unnoticed. A test that needs a different
// load-time configuration (.rodata, max_entries) still loads its own object.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace nettally::test {

class ObjectState {
public:
    // Takes a snapshot of the object's writable global sections; call it right after the load.
    explicit ObjectState(bpf_object* obj) : obj_(obj) {
        bpf_map* map;
        bpf_object__for_each_map(map, obj) {
            if (!writable_section(map))
                continue;
            std::vector<uint8_t> value(bpf_map__value_size(map));
            const uint32_t zero = 0;
            if (bpf_map_lookup_elem(bpf_map__fd(map), &zero, value.data()) != 0)
                error_ +=
                    std::string(bpf_map__name(map)) + ": snapshot failed: " + std::strerror(errno) + "; ";
            sections_.emplace_back(map, std::move(value));
        }
    }

    // Brings every map back to its state after the load. On failure: a gtest failure naming the
    // map, and false.
    bool reset() const {
        if (!error_.empty()) {
            ADD_FAILURE() << error_;
            return false;
        }
        bool ok = true;
        bpf_map* map;
        bpf_object__for_each_map(map, obj_) {
            if (const std::string why = reset_map(map); !why.empty()) {
                ADD_FAILURE() << "reset of map " << bpf_map__name(map) << ": " << why;
                ok = false;
            }
        }
        for (const auto& [map, value] : sections_) {
            const uint32_t zero = 0;
            if (bpf_map_update_elem(bpf_map__fd(map), &zero, value.data(), BPF_ANY) != 0) {
                ADD_FAILURE() << "restore of " << bpf_map__name(map) << ": " << std::strerror(errno);
                ok = false;
            }
        }
        return ok;
    }

private:
    // .bss and .data (and named .data.* sections): internal, not read-only to the programs.
    static bool writable_section(const bpf_map* map) {
        return bpf_map__is_internal(map) && (bpf_map__map_flags(map) & BPF_F_RDONLY_PROG) == 0;
    }

    // Deletes the first key until there is none (hash maps, LRU, LPM trie): deleting while
    // walking with get_next_key could skip keys.
    static std::string empty_keyed(int fd, uint32_t key_size) {
        std::vector<uint8_t> key(key_size);
        for (uint32_t n = 0;; n++) {
            if (bpf_map_get_next_key(fd, nullptr, key.data()) != 0)
                return errno == ENOENT ? std::string() : std::string("get_next_key: ") + std::strerror(errno);
            if (bpf_map_delete_elem(fd, key.data()) != 0)
                return std::string("delete: ") + std::strerror(errno);
            if (n > 100'000'000)
                return "does not empty";
        }
    }

    // Every index to zero, in one batch when the kernel takes it (arrays: 5.6+), else one by one.
    static std::string zero_array(int fd, uint32_t entries, size_t value_size) {
        std::vector<uint32_t> keys(entries);
        for (uint32_t i = 0; i < entries; i++)
            keys[i] = i;
        const std::vector<uint8_t> zeros(value_size * entries);
        uint32_t count = entries;
        if (bpf_map_update_batch(fd, keys.data(), zeros.data(), &count, nullptr) == 0 && count == entries)
            return {};
        for (uint32_t i = 0; i < entries; i++)
            if (bpf_map_update_elem(fd, &keys[i], zeros.data(), BPF_ANY) != 0)
                return "update of index " + std::to_string(i) + ": " + std::strerror(errno);
        return {};
    }

    static std::string reset_map(const bpf_map* map) {
        if (bpf_map__is_internal(map))
            return {}; // .bss/.data restored by the caller, .rodata/.kconfig frozen
        const int fd = bpf_map__fd(map);
        if (fd < 0)
            return "not created";
        const uint32_t entries = bpf_map__max_entries(map);
        switch (bpf_map__type(map)) {
        case BPF_MAP_TYPE_HASH:
        case BPF_MAP_TYPE_PERCPU_HASH:
        case BPF_MAP_TYPE_LRU_HASH:
        case BPF_MAP_TYPE_LRU_PERCPU_HASH:
        case BPF_MAP_TYPE_LPM_TRIE:
        case BPF_MAP_TYPE_HASH_OF_MAPS:
            return empty_keyed(fd, bpf_map__key_size(map));
        case BPF_MAP_TYPE_ARRAY:
            return zero_array(fd, entries, bpf_map__value_size(map));
        case BPF_MAP_TYPE_PERCPU_ARRAY: {
            const int ncpu = libbpf_num_possible_cpus();
            if (ncpu <= 0)
                return "libbpf_num_possible_cpus failed";
            const size_t stride = (size_t{bpf_map__value_size(map)} + 7) & ~size_t{7};
            return zero_array(fd, entries, stride * static_cast<size_t>(ncpu));
        }
        case BPF_MAP_TYPE_ARRAY_OF_MAPS:
            for (uint32_t i = 0; i < entries; i++)
                if (bpf_map_delete_elem(fd, &i) != 0 && errno != ENOENT)
                    return "delete of slot " + std::to_string(i) + ": " + std::strerror(errno);
            return {};
        default:
            return "map type " + std::to_string(bpf_map__type(map)) + " has no reset here (shared_object.h)";
        }
    }

    bpf_object* obj_;
    std::vector<std::pair<bpf_map*, std::vector<uint8_t>>> sections_;
    std::string error_;
};

// A suite's loaded skeleton: load() once from SetUpTestSuite, fresh() from each test, release()
// from TearDownTestSuite. S is the skeleton type (nettally_bpf, nettally_cg_bpf).
template <typename S> class SharedSkeleton {
public:
    using Destroy = void (*)(S*);

    // Keeps a loaded skeleton, or (s null) why it did not load: every fresh() then fails with it.
    void adopt(S* s, Destroy destroy, std::string error) {
        skel_ = Owned(s, destroy);
        state_ = s ? std::make_unique<ObjectState>(s->obj) : nullptr;
        error_ = std::move(error);
    }
    // Whether load() or adopt() ran (a failed load counts: it is not retried).
    bool loaded() const { return skel_ || !error_.empty(); }

    // Opens, configures (configure(S*) -> bool, false: give up) and loads the skeleton with the
    // skeleton's functions (nettally_bpf__open, ...); a failure is kept for fresh() to report.
    template <typename Configure>
    void load(S* (*open)(), int (*load)(S*), Destroy destroy, const Configure& configure) {
        S* s = open();
        if (!s) {
            adopt(nullptr, destroy, std::string("open: ") + std::strerror(errno));
            return;
        }
        if (!configure(s)) {
            destroy(s);
            adopt(nullptr, destroy, "configuration before the load failed");
            return;
        }
        if (const int err = load(s); err != 0) {
            destroy(s);
            adopt(nullptr, destroy, std::string("load: ") + std::strerror(-err) + " (libbpf log above)");
            return;
        }
        adopt(s, destroy, {});
    }
    void load(S* (*open)(), int (*load_fn)(S*), Destroy destroy) {
        load(open, load_fn, destroy, [](S*) { return true; });
    }

    // The skeleton with every map as after the load, or nullptr (with a failure saying why).
    S* fresh() const {
        if (!skel_) {
            ADD_FAILURE() << "the suite's BPF object did not load: " << error_;
            return nullptr;
        }
        return state_->reset() ? skel_.get() : nullptr;
    }

    void release() {
        state_.reset();
        skel_.reset();
        error_.clear();
    }

private:
    using Owned = std::unique_ptr<S, Destroy>;
    Owned skel_{nullptr, nullptr};
    std::unique_ptr<ObjectState> state_;
    std::string error_;
};

} // namespace nettally::test
