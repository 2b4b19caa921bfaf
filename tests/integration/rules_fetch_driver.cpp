// Test driver of the rule bundle pull (daemon/io/rules_fetch.h) for test_rules_fetch.py: runs a
// RulesFetcher on an sd-event loop, as nettallyd does, until SIGTERM, and prints one JSON line
// per event on stdout:
//   {"event": "attempt", "t_ms", "attempts", "fetches", "not_modified", "failures",
//    "consecutive_failures", "last_error", "etag", "next_ms"}      after every finished request
//   {"event": "bundle", "t_ms", "bytes", "etag", "verify", "name", "version"}   on every 200
// t_ms: CLOCK_MONOTONIC milliseconds since start. With --key PUB each bundle is checked as a
// gateway trusting that key does (verify: "" or the reason; name/version from read_bundle).
// The fetcher's log goes to stderr.
// Usage: nt_rules_fetch_driver URL REFRESH_MS [--ca-file F] [--max-size N] [--key PUB]
//        [--etag E] [--jitter J]
#include "core/classes_bundle.h"
#include "core/classes_sign.h"
#include "io/rules_fetch.h"

#include <nlohmann/json.hpp>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-event.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <span>
#include <string>
#include <vector>

namespace {

uint64_t mono_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

uint64_t real_us() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

void emit(const nlohmann::json& j) {
    std::cout << j.dump() << std::endl; // one line, flushed: the test reads it as it comes
}

int usage() {
    std::cerr << "usage: nt_rules_fetch_driver URL REFRESH_MS [--ca-file F] [--max-size N] [--key PUB] "
                 "[--etag E] [--jitter J]\n";
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3)
        return usage();
    nettally::RulesFetchOptions opt;
    opt.url = argv[1];
    opt.refresh = std::chrono::milliseconds(std::strtoll(argv[2], nullptr, 10));
    opt.jitter = 0;
    opt.connect_timeout = std::chrono::seconds(2);
    opt.transfer_timeout = std::chrono::seconds(5);
    std::vector<nettally::PublicKey> keys;
    try {
        for (int i = 3; i < argc; i += 2) {
            if (i + 1 >= argc)
                return usage();
            const std::string flag = argv[i];
            const std::string value = argv[i + 1];
            if (flag == "--ca-file")
                opt.ca_file = value;
            else if (flag == "--max-size")
                opt.max_size = std::strtoull(value.c_str(), nullptr, 10);
            else if (flag == "--key")
                keys.push_back(nettally::read_public_key(value));
            else if (flag == "--etag")
                opt.etag = value;
            else if (flag == "--jitter")
                opt.jitter = std::strtod(value.c_str(), nullptr);
            else
                return usage();
        }
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    // The fetcher's log lines go to stderr: stdout is the JSON lines only.
    spdlog::set_default_logger(spdlog::stderr_logger_mt("rules_fetch_driver"));
    sd_event* ev = nullptr;
    if (sd_event_default(&ev) < 0)
        return 1;
    sd_event_add_signal(ev, nullptr, SIGTERM, nullptr, nullptr);
    sd_event_add_signal(ev, nullptr, SIGINT, nullptr, nullptr);

    const uint64_t start = mono_ms();
    int rc = 0;
    try {
        auto on_bundle = [&](std::vector<uint8_t> bytes, std::string etag) {
            nlohmann::json j{
                {"event", "bundle"}, {"t_ms", mono_ms() - start}, {"bytes", bytes.size()}, {"etag", etag}};
            std::span<const uint8_t> part;
            const std::string why = nettally::verify_bundle_signature(bytes, keys, &part);
            j["verify"] = why;
            if (why.empty()) {
                try {
                    const nettally::Bundle b = nettally::read_bundle(part);
                    j["name"] = b.name;
                    j["version"] = b.version;
                } catch (const nettally::BundleError& e) {
                    j["verify"] = e.what();
                }
            }
            emit(j);
        };
        auto on_attempt = [&](const nettally::RulesFetchStatus& s) {
            const uint64_t now = real_us();
            emit({{"event", "attempt"},
                  {"t_ms", mono_ms() - start},
                  {"attempts", s.attempts},
                  {"fetches", s.fetches},
                  {"not_modified", s.not_modified},
                  {"failures", s.failures},
                  {"consecutive_failures", s.consecutive_failures},
                  {"last_error", s.last_error},
                  {"etag", s.etag},
                  {"next_ms", s.next_attempt_us > now ? (s.next_attempt_us - now) / 1000 : 0}});
        };
        nettally::RulesFetcher fetcher(ev, opt, on_bundle, on_attempt);
        rc = sd_event_loop(ev) < 0 ? 1 : 0;
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        rc = 1;
    }
    sd_event_unref(ev);
    return rc;
}
