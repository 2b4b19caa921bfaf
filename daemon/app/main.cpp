// nettallyd entry point: arguments, config, pre-flight checks, then the
// Daemon. Every fatal error is one line on stderr and a non-zero exit:
// 2 for usage and config errors, 1 for everything else.
#include "app/daemon.h"
#include "core/config.h"
#include "core/history.h"
#include "core/interfaces.h"
#include "kernel/bpffs.h"
#include "os/logging.h"
#include "os/system.h"

#include <cstdio>
#include <cstring>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <string>
#include <unistd.h>

#ifndef NETTALLY_VERSION
#define NETTALLY_VERSION "dev"
#endif

namespace {

constexpr const char* kDefaultConfig = "/etc/nettally/nettally.yaml";

void usage(FILE* to) {
    std::fprintf(to,
                 "Usage: nettallyd [--config PATH] [--check-config | --detach | --prepare-pins USER]\n"
                 "\n"
                 "Accounts network traffic per interface, layer, flow and host with eBPF,\n"
                 "and serves the totals on the system bus as org.nettally.Accounting1.\n"
                 "\n"
                 "  -c, --config PATH   config file (default %s)\n"
                 "      --check-config  validate the config and exit (0 valid, 2 invalid)\n"
                 "      --detach        uninstall: save totals to the state file, remove every nettally\n"
                 "                      program from every interface and the pinned maps, exit\n"
                 "      --prepare-pins USER\n"
                 "                      as root, before nettallyd starts as USER: give the config's pin_dir\n"
                 "                      and its pins to USER and let USER reach it (o+x on the bpffs\n"
                 "                      directories above it), exit (the unit's ExecStartPre)\n"
                 "  -h, --help          this help\n"
                 "      --version       print the version\n"
                 "\n"
                 "Signals: SIGHUP reloads the config; SIGTERM/SIGINT save the totals and exit, leaving\n"
                 "the programs attached and counting into pinned maps until the next start.\n"
                 "Exit status: 0 clean exit, 1 runtime failure, 2 usage or config error.\n",
                 kDefaultConfig);
}

// The daemon's life; every error that ends it is one line and an exit status.
int run_daemon(nettally::Config cfg, bool detach) {
    try {
        nettally::Daemon daemon(std::move(cfg));
        if (detach) {
            daemon.detach_everything();
            return 0;
        }
        return daemon.run();
    } catch (const nettally::InterfaceError& e) {
        spdlog::critical("config: {}", e.what());
        return 1;
    } catch (const nettally::ConfigError& e) {
        spdlog::critical("config: {}", e.what());
        return 2;
    } catch (const nettally::PinMismatch& e) {
        spdlog::critical("datapath: {}", e.what());
        return 1;
    } catch (const nettally::SysError& e) {
        if (e.err() == EPERM || e.err() == EACCES)
            spdlog::critical("daemon: {} (missing privileges? nettallyd needs CAP_BPF, CAP_PERFMON and "
                             "CAP_NET_ADMIN)",
                             e.what());
        else
            spdlog::critical("daemon: {}", e.what());
        return 1;
    } catch (const std::exception& e) {
        spdlog::critical("daemon: {}", e.what());
        return 1;
    }
}

// --prepare-pins USER: see kernel/bpffs.h.
int prepare_pins(const nettally::Config& cfg, const std::string& user) {
    const passwd* pw = getpwnam(user.c_str());
    if (pw == nullptr) {
        spdlog::critical("--prepare-pins: no such user '{}'", user);
        return 2;
    }
    if (cfg.pin_dir.empty()) {
        spdlog::info("--prepare-pins: pin_dir is empty (no pins): nothing to prepare");
        return 0;
    }
    try {
        const nettally::PinDirChanges c = nettally::prepare_pin_dir(cfg.pin_dir, pw->pw_uid, pw->pw_gid);
        spdlog::info("--prepare-pins: {} ready for {} (uid {}): {} directories made searchable, {} created, "
                     "{} entries given to it",
                     cfg.pin_dir.string(), user, pw->pw_uid, c.searchable, c.created, c.chowned);
        return 0;
    } catch (const nettally::SysError& e) {
        spdlog::critical("--prepare-pins: {}", e.what());
        return 1;
    }
}

} // namespace

int main(int argc, char** argv) {
    std::string config_path = kDefaultConfig;
    bool check_only = false;
    bool detach = false;
    std::string prepare_user;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if ((a == "-c" || a == "--config") && i + 1 < argc) {
            config_path = argv[++i];
        } else if (a.rfind("--config=", 0) == 0) {
            config_path = a.substr(9);
        } else if (a == "--check-config") {
            check_only = true;
        } else if (a == "--detach") {
            detach = true;
        } else if (a == "--prepare-pins" && i + 1 < argc) {
            prepare_user = argv[++i];
        } else if (a == "-h" || a == "--help") {
            usage(stdout);
            return 0;
        } else if (a == "--version") {
            std::printf("nettallyd %s\n", NETTALLY_VERSION);
            return 0;
        } else {
            std::fprintf(stderr, "nettallyd: unknown argument '%s'\n", a.c_str());
            usage(stderr);
            return 2;
        }
    }

    nettally::setup_logging(!isatty(STDERR_FILENO));

    nettally::Config cfg;
    try {
        cfg = nettally::load_config(config_path);
    } catch (const nettally::ConfigError& e) {
        spdlog::critical("config: {}", e.what());
        return 2;
    }
    if (!nettally::set_log_level(cfg.log_level)) {
        spdlog::critical("config: {}: log_level: unknown level '{}'", config_path, cfg.log_level);
        return 2;
    }
    try {
        nettally::TimeZone::load(cfg.time_zone, "/usr/share/zoneinfo");
    } catch (const std::exception& e) {
        spdlog::critical("config: {}: periods.time_zone: {}", config_path, e.what());
        return 2;
    }
    if (check_only) {
        std::printf("%s: valid\n", config_path.c_str());
        return 0;
    }
    if (!prepare_user.empty())
        return prepare_pins(cfg, prepare_user);

    for (const std::string& problem : {nettally::check_btf(), nettally::check_capabilities()}) {
        if (!problem.empty()) {
            spdlog::critical("daemon: {}", problem);
            return 1;
        }
    }
    if (const auto used = nettally::internet_features(cfg);
        !used.empty() && !nettally::internet_sockets_allowed()) {
        std::string keys;
        for (const std::string& k : used)
            keys += (keys.empty() ? "" : ", ") + k;
        spdlog::error("daemon: {} need internet sockets (AF_INET, AF_INET6), which this process may not "
                      "create (the unit's RestrictAddressFamilies=): add the drop-in of README \"Network "
                      "features under the unit\" (until then each fails as without a network: metrics.listen "
                      "stops the start, the others retry or report)",
                      keys);
    }
    nettally::route_libbpf_logs();

    return run_daemon(std::move(cfg), detach);
}
