// nettallyctl's command line (ctl/args.h) and verb table (ctl/verbs.h): CLI11 parsing into
// Options, the usage errors scripts see, records/upload arguments, and help built from the table.
#include "args.h"
#include "verbs.h"

#include <gtest/gtest.h>

#include <set>

namespace nettally::ctl {
namespace {

Options ok(std::vector<std::string_view> args) {
    const ParseResult r = parse_args(args);
    if (const auto* e = std::get_if<UsageError>(&r)) {
        ADD_FAILURE() << e->message;
        return {};
    }
    return std::get<Options>(r);
}

std::string err(std::vector<std::string_view> args) {
    const ParseResult r = parse_args(args);
    const auto* e = std::get_if<UsageError>(&r);
    return e ? e->message : "(accepted)";
}

TEST(CtlArgs, EveryVerbParsesToItsCommand) {
    for (const Verb& v : verbs()) {
        std::vector<std::string> words;
        for (std::size_t start = 0;;) {
            const auto sp = v.name.find(' ', start);
            words.emplace_back(v.name.substr(start, sp == std::string_view::npos ? sp : sp - start));
            if (sp == std::string_view::npos)
                break;
            start = sp + 1;
        }
        for (int i = 0; i < v.min_args; ++i)
            words.push_back(v.name == "records set" ? "enabled=true" : "x");
        if (v.name == "thresholds add")
            for (const char* w : {"--host", "h", "--step", "1MB"})
                words.push_back(w);
        if (v.name == "thresholds modify")
            for (const char* w : {"--step", "1MB"})
                words.push_back(w);
        if (v.name == "rules compile")
            for (const char* w : {"-o", "b"})
                words.push_back(w);
        if (v.name == "rules verify")
            for (const char* w : {"--key", "k.pub"})
                words.push_back(w);
        const std::vector<std::string_view> args(words.begin(), words.end());
        EXPECT_EQ(ok(args).command, v.command) << v.name;
    }
}

TEST(CtlArgs, VerbTableIsConsistent) {
    std::set<std::string_view> names;
    for (const Verb& v : verbs()) {
        EXPECT_TRUE(names.insert(v.name).second) << "twice: " << v.name;
        EXPECT_TRUE(v.synopsis.starts_with(v.name)) << v.name;
        EXPECT_TRUE(v.run != nullptr || v.command == Command::Help) << v.name;
        if (v.min_args > 0) {
            EXPECT_FALSE(v.missing_args.empty()) << v.name;
        }
        EXPECT_EQ(find_verb(v.name), &v);
    }
    EXPECT_EQ(find_verb("frobnicate"), nullptr);
    EXPECT_EQ(group_of("thresholds add"), "thresholds");
    EXPECT_EQ(group_of("hosts"), "");
    EXPECT_EQ(group_subcommands("records"),
              (std::vector<std::string_view>{"status", "set", "reset", "rotate", "spool"}));
}

TEST(CtlArgs, GroupsNeedAKnownSubcommand) {
    EXPECT_EQ(err({"records"}), "records needs a subcommand: status, set, reset, rotate or spool");
    EXPECT_EQ(err({"upload", "frob"}),
              "unknown upload subcommand 'frob' (status, spool, now, set-target, clear-target)");
    EXPECT_EQ(err({"records", "rotate", "extra"}), "unexpected argument 'extra'");
    EXPECT_EQ(err({"status", "extra"}), "unexpected argument 'extra'");
    EXPECT_EQ(err({"frobnicate"}), "unknown command 'frobnicate'");
    EXPECT_EQ(err({"--bogus"}), "unknown option '--bogus'");
    EXPECT_EQ(err({}), "missing command");
}

TEST(CtlArgs, OptionsBelongToTheirCommands) {
    EXPECT_EQ(err({"status", "--sort", "l2"}),
              "--sort is only valid with 'hosts', 'flows' and 'top', not 'status'");
    EXPECT_EQ(err({"status", "--step", "1"}),
              "--step is only valid with 'thresholds add' and 'thresholds modify', not 'status'");
    EXPECT_EQ(err({"upload", "status", "--user", "u"}),
              "option '--user' is only valid with 'upload set-target'");
    EXPECT_EQ(err({"status", "--bogus"}), "unknown option '--bogus'");
    EXPECT_EQ(err({"hosts", "--top"}), "option '--top' needs a value");
    EXPECT_EQ(err({"--timeout", "x", "status"}), "--timeout: 'x' is not a number of seconds in (0, 86400]");
}

TEST(CtlArgs, Records) {
    const Options o = ok({"--json", "records", "set", "max_file_size=64MiB", "enabled=off", "period=5m",
                          "max_records=7", "--timeout=2"});
    EXPECT_EQ(o.command, Command::Records);
    EXPECT_EQ(o.records.sub, "set");
    EXPECT_TRUE(o.json);
    EXPECT_EQ(o.timeout_sec, 2.0);
    const std::map<std::string, SettingValue> want = {{"max_file_size", std::uint64_t{64} << 20},
                                                      {"enabled", false},
                                                      {"period", std::string("5m")},
                                                      {"max_records", std::uint64_t{7}}};
    EXPECT_EQ(o.records.settings, want);
    EXPECT_EQ(std::get<std::uint64_t>(o.records.settings.at("max_file_size")), 67108864U)
        << "the config's syntax";
    EXPECT_EQ(ok({"records", "set", "max_file_size=1MB"}).records.settings.at("max_file_size"),
              SettingValue(std::uint64_t{1000000}));
    EXPECT_EQ(err({"records", "set"}), "records set: give at least one KEY=VALUE");
    EXPECT_EQ(err({"records", "set", "max_file_size=lots"}),
              "records set: max_file_size: expected a size (bytes, or e.g. 64MiB, 1GB), got 'lots'");
    EXPECT_EQ(err({"records", "set", "colour=red"}),
              "records set: unknown setting 'colour' (enabled, period, interval, types, max_file_size, "
              "max_records, compress)");
    EXPECT_EQ(err({"records", "set", "=1"}), "records set: expected KEY=VALUE, got '=1'");
    EXPECT_EQ(err({"records", "set", "compress=maybe"}),
              "records set: compress: expected true or false, got 'maybe'");
    EXPECT_EQ(ok({"records", "reset"}).records.sub, "reset");
}

TEST(CtlArgs, Upload) {
    const Options o = ok({"upload", "set-target", "sftp://h/x", "--user", "u", "--password-stdin"});
    EXPECT_EQ(o.command, Command::Upload);
    EXPECT_EQ(o.upload.sub, "set-target");
    EXPECT_EQ(o.upload.url, "sftp://h/x");
    EXPECT_EQ(o.upload.user, "u");
    EXPECT_TRUE(o.upload.password_stdin);
    EXPECT_EQ(ok({"upload", "set-target", "u", "--password-file=/f"}).upload.password_file, "/f");
    EXPECT_EQ(err({"upload", "set-target"}), "upload set-target: missing URL");
    EXPECT_EQ(err({"upload", "set-target", "a", "b"}), "unexpected argument 'b'");
    EXPECT_EQ(err({"upload", "set-target", "u", "--password-stdin", "--password-file", "f"}),
              "use either --password-stdin or --password-file");
    for (std::string_view p : {"--password=x", "--password"})
        EXPECT_EQ(err({"upload", "set-target", "u", p}),
                  "the password is not accepted on the command line (other users can read it there); "
                  "use --password-stdin or --password-file FILE")
            << p;
    EXPECT_EQ(ok({"upload", "now", "--json"}).upload.sub, "now");
}

TEST(CtlArgs, HelpWinsAndDocumentsEveryVerbAndOption) {
    EXPECT_EQ(ok({"records", "set", "--help"}).command, Command::Help);
    EXPECT_EQ(ok({"frobnicate", "--help"}).command, Command::Help);
    const std::string h = help_text("nettallyctl 1");
    for (const Verb& v : verbs()) {
        EXPECT_NE(h.find(v.synopsis), std::string::npos) << v.synopsis;
        for (const OptionSpec& o : v.options) {
            if (o.target != Target::RefusedPassword) {
                EXPECT_NE(h.find(o.flag), std::string::npos) << o.flag;
            }
        }
    }
}

TEST(CtlArgs, RulesCompile) {
    Options o = ok({"rules", "compile", "r.yaml", "-o", "r.bundle"});
    EXPECT_EQ(o.command, Command::Rules);
    EXPECT_EQ(o.rules.sub, "compile");
    EXPECT_EQ(o.rules.file, "r.yaml");
    EXPECT_EQ(o.output, "r.bundle");
    o = ok({"--json", "rules", "compile", "--output=x.bundle", "r.yaml"});
    EXPECT_EQ(o.output, "x.bundle");
    EXPECT_TRUE(o.json);
    EXPECT_EQ(err({"rules", "compile", "r.yaml"}), "rules compile needs -o BUNDLE, the file to write");
    EXPECT_EQ(err({"rules", "compile", "-o", "b"}), "rules compile needs the rule document RULES.yaml");
    EXPECT_EQ(err({"rules"}), "rules needs a subcommand: compile, keygen, verify, status, load or rollback");
    EXPECT_EQ(ok({"rules", "compile", "r.yaml", "-o", "r.bundle", "--sign", "s.key"}).rules.sign_key,
              "s.key");
    EXPECT_EQ(ok({"rules", "compile", "r.yaml", "-o", "r.bundle"}).rules.sign_key, "");
    EXPECT_EQ(err({"rules", "compile", "r.yaml", "-o", "r.bundle", "--sign"}),
              "option '--sign' needs a value");
    EXPECT_EQ(err({"rules", "compile", "r.yaml", "-o", "r.bundle", "--key", "k.pub"}),
              "option '--key' is only valid with 'rules verify'");

    o = ok({"rules", "keygen", "/etc/nettally/signer"});
    EXPECT_EQ(o.rules.sub, "keygen");
    EXPECT_EQ(o.rules.file, "/etc/nettally/signer");
    EXPECT_EQ(err({"rules", "keygen"}), "rules keygen needs PREFIX, the start of the key files' names");

    o = ok({"rules", "verify", "r.bundle", "--key", "k.pub"});
    EXPECT_EQ(o.rules.sub, "verify");
    EXPECT_EQ(o.rules.file, "r.bundle");
    EXPECT_EQ(o.rules.key, "k.pub");
    EXPECT_EQ(err({"rules", "verify", "r.bundle"}),
              "rules verify needs --key PUB, the public key file to check with");
    EXPECT_EQ(err({"rules", "verify", "--key", "k.pub"}), "rules verify needs the bundle file BUNDLE");
}

TEST(CtlArgs, RulesOnTheBus) {
    Options o = ok({"rules", "load", "v2.bundle"});
    EXPECT_EQ(o.command, Command::Rules);
    EXPECT_EQ(o.rules.sub, "load");
    EXPECT_EQ(o.rules.file, "v2.bundle");
    EXPECT_EQ(err({"rules", "load"}), "rules load needs the bundle file BUNDLE");
    EXPECT_NE(err({"rules", "load", "a", "b"}), "");
    o = ok({"--json", "rules", "status"});
    EXPECT_EQ(o.rules.sub, "status");
    EXPECT_TRUE(o.json);
    EXPECT_EQ(ok({"rules", "rollback"}).rules.sub, "rollback");
    EXPECT_NE(err({"rules", "rollback", "x"}), "");
    o = ok({"--json", "classes"});
    EXPECT_EQ(o.command, Command::Classes);
    EXPECT_TRUE(o.json);
    EXPECT_NE(err({"classes", "x"}), "");
}

TEST(CtlArgs, Export) {
    const Options set = ok({"export", "set", "udp://198.18.2.2:4739", "tcp://[fd00::2]:4739"});
    EXPECT_EQ(set.command, Command::Export);
    EXPECT_EQ(set.exports.sub, "set");
    EXPECT_EQ(set.exports.urls, (std::vector<std::string>{"udp://198.18.2.2:4739", "tcp://[fd00::2]:4739"}));
    EXPECT_EQ(ok({"export", "clear"}).exports.sub, "clear");
    EXPECT_EQ(ok({"--json", "export", "status"}).exports.sub, "status");
    EXPECT_EQ(err({"export", "set"}), "export set: missing URL");
    EXPECT_NE(err({"export", "status", "x"}), "(accepted)");
}

} // namespace
} // namespace nettally::ctl
