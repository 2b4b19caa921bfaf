// The traffic class rule commands: rules compile (local: the rule document in, a bundle out; no
// daemon involved, so a rule server can build bundles for gateways), and over the bus
// (org.nettally.Accounting1.Rules): rules status, rules load, rules rollback, classes.
#include "commands.h"

#include "bus.h"
#include "convert.h"
#include "core/classes.h"
#include "core/classes_bundle.h"
#include "format.h"
#include "proxies.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace nettally::ctl {
namespace {

// The whole file; false with `error` set when it cannot be read.
bool read_text(const std::string& path, std::string& text, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = "cannot read " + path + ": " + std::strerror(errno);
        return false;
    }
    std::ostringstream s;
    s << in.rdbuf();
    text = s.str();
    return true;
}

// Written to a temporary file beside the target and renamed over it, so a reader (nettallyd
// loading rules.bundle, a web server) never sees half a bundle.
bool write_atomically(const std::string& path, const std::vector<uint8_t>& data, std::string& error) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
        out.close();
        if (!out) {
            error = "cannot write " + tmp + ": " + std::strerror(errno);
            std::remove(tmp.c_str());
            return false;
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        error = "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
        std::remove(tmp.c_str());
        return false;
    }
    return true;
}

int compile(const Options& opt) {
    std::string text;
    std::string error;
    if (!read_text(opt.rules.file, text, error)) {
        std::cerr << "nettallyctl: " << error << "\n";
        return kExitDaemonError;
    }
    std::vector<uint8_t> bytes;
    Bundle bundle;
    try {
        bundle = compile_rules(parse_rules(text, opt.rules.file));
        bytes = write_bundle(bundle);
    } catch (const BundleError& e) {
        std::cerr << opt.rules.file << ": " << e.what() << "\n";
        return kExitDaemonError;
    } catch (const std::runtime_error& e) {
        // ConfigError: "FILE:LINE:COL: KEY: PROBLEM" already.
        std::cerr << e.what() << "\n";
        return kExitDaemonError;
    }
    if (!write_atomically(opt.output, bytes, error)) {
        std::cerr << "nettallyctl: " << error << "\n";
        return kExitDaemonError;
    }
    if (opt.json) {
        std::cout << dump(Json{{"name", bundle.name},
                               {"version", bundle.version},
                               {"hash", hash_text(bundle.hash)},
                               {"classes", bundle.classes.size()},
                               {"rules", bundle.rules.size()},
                               {"bytes", bytes.size()},
                               {"output", opt.output}});
        return kExitOk;
    }
    std::cout << "ruleset " << bundle.name << " version " << bundle.version << " hash "
              << hash_text(bundle.hash) << ": " << bundle.classes.size() << " classes, "
              << bundle.rules.size() << " rules, " << bytes.size() << " bytes -> " << opt.output << "\n";
    return kExitOk;
}

// The version and hash now in force, as rules load and rules rollback print them.
std::string applied(const Options& opt, const std::tuple<uint64_t, std::string>& r) {
    const auto& [version, hash] = r;
    if (opt.json)
        return dump(Json{{"version", version}, {"hash", hash}});
    return "ruleset version " + std::to_string(version) + " hash " + hash + " in force\n";
}

int load(const Options& opt) {
    std::ifstream in(opt.rules.file, std::ios::binary);
    if (!in) {
        std::cerr << "nettallyctl: cannot read " << opt.rules.file << ": " << std::strerror(errno) << "\n";
        return kExitDaemonError;
    }
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        RulesProxy p(connection);
        return applied(opt, p.LoadRules(bytes));
    });
}

} // namespace

int run_classes(const Options& opt) {
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        RulesProxy p(connection);
        const auto rows = from_wire(p.ListClasses());
        return opt.json ? dump(classes_json(rows)) : classes_text(rows);
    });
}

int run_rules(const Options& opt) {
    if (opt.rules.sub == "compile")
        return compile(opt);
    if (opt.rules.sub == "load")
        return load(opt);
    if (opt.rules.sub == "status")
        return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
            RulesProxy p(connection);
            const Dict status = from_wire(p.GetRulesStatus());
            return opt.json ? dump(rules_status_json(status)) : rules_status_text(status);
        });
    if (opt.rules.sub == "rollback")
        return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
            RulesProxy p(connection);
            return applied(opt, p.RollbackRules());
        });
    std::cerr << "nettallyctl: rules " << opt.rules.sub << ": unknown subcommand\n";
    return kExitUsage;
}

} // namespace nettally::ctl
