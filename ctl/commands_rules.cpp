// The traffic class rule commands. Local (no daemon involved, so a rule server can build bundles
// for gateways): rules compile (the rule document in, a bundle out, signed with --sign), rules
// keygen (an Ed25519 key pair for signing) and rules verify (a bundle checked as a gateway that
// trusts one key checks it: core/classes_sign.h). Over the bus (org.nettally.Accounting1.Rules):
// rules status, rules load, rules rollback, classes.
#include "commands.h"

#include "bus.h"
#include "convert.h"
#include "core/classes.h"
#include "core/classes_bundle.h"
#include "core/classes_sign.h"
#include "format.h"
#include "proxies.h"

#include <fcntl.h>
#include <unistd.h>

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

// A new file with exactly `text`, created with `mode` (never over an existing file).
bool write_new(const std::string& path, const std::string& text, mode_t mode, std::string& error) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        error = "cannot create " + path + ": " + std::strerror(errno);
        return false;
    }
    // The umask may have taken bits away; it never adds any, so 0600 stays 0600.
    const bool ok =
        ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    const int err = errno;
    ::close(fd);
    if (!ok) {
        error = "cannot write " + path + ": " + std::strerror(err);
        ::unlink(path.c_str());
    }
    return ok;
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
    std::string signer;
    try {
        // The key first: a key that cannot be used stops before anything is compiled.
        SecretKey secret{};
        if (!opt.rules.sign_key.empty())
            secret = read_secret_key(opt.rules.sign_key);
        bundle = compile_rules(parse_rules(text, opt.rules.file));
        bytes = write_bundle(bundle);
        if (!opt.rules.sign_key.empty()) {
            bytes = sign_bundle(bytes, secret);
            signer = key_id_text(signature_info(bytes).key);
        }
    } catch (const KeyError& e) {
        std::cerr << "nettallyctl: " << e.what() << "\n";
        return kExitDaemonError;
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
        Json j{{"name", bundle.name},
               {"version", bundle.version},
               {"hash", hash_text(bundle.hash)},
               {"classes", bundle.classes.size()},
               {"rules", bundle.rules.size()},
               {"bytes", bytes.size()},
               {"output", opt.output}};
        if (!signer.empty())
            j["key_id"] = signer;
        std::cout << dump(j);
        return kExitOk;
    }
    std::cout << "ruleset " << bundle.name << " version " << bundle.version << " hash "
              << hash_text(bundle.hash) << ": " << bundle.classes.size() << " classes, "
              << bundle.rules.size() << " rules, " << bytes.size() << " bytes"
              << (signer.empty() ? "" : ", signed by key " + signer) << " -> " << opt.output << "\n";
    return kExitOk;
}

int keygen(const Options& opt) {
    const std::string pub_path = opt.rules.file + ".pub";
    const std::string key_path = opt.rules.file + ".key";
    KeyPair k;
    try {
        k = generate_keypair();
    } catch (const std::runtime_error& e) {
        std::cerr << "nettallyctl: " << e.what() << "\n";
        return kExitDaemonError;
    }
    std::string error;
    // The secret key first and alone readable by its owner; the public one only once that worked.
    std::string secret = secret_key_text(k.secret);
    const bool ok =
        write_new(key_path, secret, 0600, error) && write_new(pub_path, public_key_text(k.pub), 0644, error);
    std::fill(secret.begin(), secret.end(), '\0');
    k.secret.fill(0);
    if (!ok) {
        std::cerr << "nettallyctl: " << error << "\n";
        return kExitDaemonError;
    }
    const std::string id = key_id_text(key_id(k.pub));
    if (opt.json)
        std::cout << dump(Json{{"key_id", id}, {"public", pub_path}, {"secret", key_path}});
    else
        std::cout << "key " << id << ": secret key " << key_path
                  << " (keep it on the rule server), public key " << pub_path
                  << " (rules.trusted_keys of the gateways)\n";
    return kExitOk;
}

int verify(const Options& opt) {
    std::string text;
    std::string error;
    if (!read_text(opt.rules.file, text, error)) {
        std::cerr << "nettallyctl: " << error << "\n";
        return kExitDaemonError;
    }
    PublicKey pub{};
    try {
        pub = read_public_key(opt.rules.key);
    } catch (const KeyError& e) {
        std::cerr << "nettallyctl: " << e.what() << "\n";
        return kExitDaemonError;
    }
    const std::span<const uint8_t> file(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    const SignatureInfo info = signature_info(file);
    std::span<const uint8_t> bundle_bytes;
    std::string why = verify_bundle_signature(file, {pub}, &bundle_bytes);
    Bundle bundle;
    bool have_bundle = false;
    try {
        bundle = read_bundle(why.empty() ? bundle_bytes : file.first(info.bundle_size));
        have_bundle = true;
    } catch (const BundleError& e) {
        if (why.empty())
            why = e.what();
    }
    const std::string signer = info.signed_ ? key_id_text(info.key) : "";
    if (opt.json) {
        Json j{{"ok", why.empty()}, {"error", why}, {"key_id", signer.empty() ? Json() : Json(signer)}};
        j["name"] = have_bundle ? Json(bundle.name) : Json();
        j["version"] = have_bundle ? Json(bundle.version) : Json();
        j["hash"] = have_bundle ? Json(hash_text(bundle.hash)) : Json();
        std::cout << dump(j);
    } else {
        std::cout << opt.rules.file << ": ";
        if (have_bundle)
            std::cout << "ruleset " << bundle.name << " version " << bundle.version << " hash "
                      << hash_text(bundle.hash) << ", ";
        std::cout << (signer.empty() ? "unsigned" : "signed by key " + signer) << ": "
                  << (why.empty() ? "ok" : "refused: " + why) << "\n";
    }
    return why.empty() ? kExitOk : kExitDaemonError;
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
        if (opt.class_hosts) {
            const auto rows = from_wire(p.ListHostClasses(opt.iface));
            return opt.json ? dump(host_classes_json(rows)) : host_classes_text(rows);
        }
        const auto rows = from_wire(p.ListClasses());
        return opt.json ? dump(classes_json(rows)) : classes_text(rows);
    });
}

int run_rules(const Options& opt) {
    if (opt.rules.sub == "compile")
        return compile(opt);
    if (opt.rules.sub == "keygen")
        return keygen(opt);
    if (opt.rules.sub == "verify")
        return verify(opt);
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
