// See args.h. CLI11 does the tokenising (--opt VALUE, --opt=VALUE, options before or after the
// command); the verb table says which command takes which option. Unknown arguments are kept
// as extras and explained here, so the messages name the command an option belongs to.
#include "args.h"

#include "core/units.h"
#include "format_graph.h"
#include "verbs.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <memory>

namespace nettally::ctl {
namespace {

using Key = std::pair<const Verb*, const OptionSpec*>;

// What CLI11 fills in, per verb and option; interpreted by Parser::apply afterwards.
struct Raw {
    int json = 0;
    int version = 0;
    std::vector<std::string> timeout;
    std::map<Key, std::vector<std::string>> values;
    std::map<Key, int> flags;
    std::map<const Verb*, std::vector<std::string>> positionals;
    std::map<const Verb*, CLI::App*> apps;
    std::map<std::string, CLI::App*, std::less<>> groups;
};

// "'a'", "'a' and 'b'", "'a', 'b' and 'c'".
std::string quoted_list(const std::vector<std::string_view>& names) {
    std::string out;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0)
            out += i + 1 == names.size() ? " and " : ", ";
        out += "'" + std::string(names[i]) + "'";
    }
    return out;
}

std::string joined(const std::vector<std::string_view>& words, std::string_view sep, std::string_view last) {
    std::string out;
    for (std::size_t i = 0; i < words.size(); ++i)
        out += std::string(i == 0 ? "" : (i + 1 == words.size() ? last : sep)) + std::string(words[i]);
    return out;
}

// The values of a CLI11 option: one per occurrence, each occurrence exactly one value.
CLI::Option* add_value(CLI::App& app, std::string_view flag, std::vector<std::string>& into) {
    return app.add_option(std::string(flag), into)
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

CLI::App* add_verb(CLI::App& parent, std::string_view name, Raw& raw, const Verb* verb) {
    CLI::App* app = parent.add_subcommand(std::string(name));
    app->allow_extras()->fallthrough()->require_subcommand(0, 1);
    app->set_help_flag();
    if (!verb)
        return app;
    raw.apps[verb] = app;
    for (const OptionSpec& o : verb->options) {
        const Key key{verb, &o};
        if (o.target == Target::RefusedPassword)
            app->add_option(std::string(o.flag), raw.values[key])->expected(0, 1)->allow_extra_args(false);
        else if (o.value.empty())
            app->add_flag(std::string(o.flag), raw.flags[key]);
        else
            add_value(*app, o.flag, raw.values[key]);
    }
    if (verb->max_args != 0)
        app->add_option("args", raw.positionals[verb])->expected(0, -1);
    return app;
}

void build(CLI::App& app, Raw& raw) {
    app.allow_extras()->require_subcommand(0, 1);
    app.set_help_flag("-h,--help");
    app.add_flag("--json", raw.json);
    app.add_flag("--version", raw.version);
    add_value(app, "--timeout", raw.timeout);
    for (const Verb& v : verbs()) {
        const std::string_view group = group_of(v.name);
        if (group.empty()) {
            add_verb(app, v.name, raw, &v);
            continue;
        }
        auto it = raw.groups.find(group);
        if (it == raw.groups.end())
            it = raw.groups.emplace(std::string(group), add_verb(app, group, raw, nullptr)).first;
        add_verb(*it->second, v.name.substr(group.size() + 1), raw, &v);
    }
}

// The chosen verb (nullptr: none), and the group named without a subcommand ("" otherwise).
std::pair<const Verb*, std::string> chosen(const CLI::App& app, const Raw& raw) {
    for (const auto& [verb, sub] : raw.apps)
        if (sub->parsed())
            return {verb, ""};
    for (const auto& [name, g] : raw.groups)
        if (g->parsed())
            return {nullptr, name};
    (void)app;
    return {nullptr, ""};
}

// Why `extra` is not accepted by `verb` (nullptr: no command given, `group`: a group without
// its subcommand).
std::string explain_extra(const std::string& extra, const Verb* verb, const std::string& group) {
    const bool option = extra.size() > 1 && extra[0] == '-';
    if (!option) {
        if (!group.empty())
            return "unknown " + group + " subcommand '" + extra + "' (" +
                   joined(group_subcommands(group), ", ", ", ") + ")";
        return verb ? "unexpected argument '" + extra + "'" : "unknown command '" + extra + "'";
    }
    const std::string flag = extra.substr(0, extra.find('='));
    const std::string_view my_group = verb ? group_of(verb->name) : std::string_view(group);
    std::vector<std::string_view> same_group, all;
    for (const Verb& v : verbs())
        for (const OptionSpec& o : v.options)
            if (o.flag == flag && o.target != Target::RefusedPassword) {
                all.push_back(v.name);
                if (group_of(v.name) == my_group)
                    same_group.push_back(v.name);
            }
    if (all.empty() || (!verb && group.empty()))
        return "unknown option '" + extra + "'";
    if (!my_group.empty() && !same_group.empty())
        return "option '" + flag + "' is only valid with " + quoted_list(same_group);
    const auto& where = same_group.empty() ? all : same_group;
    return flag + " is only valid with " + quoted_list(where) + ", not '" +
           std::string(verb ? verb->name : my_group) + "'";
}

// Where an option that keeps its last value as text keeps it.
std::string* text_option(Target t, Options& opt) {
    switch (t) {
    case Target::Sort:
        return &opt.sort;
    case Target::User:
        return &opt.upload.user;
    case Target::Period:
        return &opt.period;
    case Target::PasswordFile:
        return &opt.upload.password_file;
    case Target::Layer:
        return &opt.layer;
    case Target::Subject:
        return &opt.subject;
    case Target::Output:
        return &opt.output;
    case Target::SignKey:
        return &opt.rules.sign_key;
    case Target::VerifyKey:
        return &opt.rules.key;
    case Target::Iface:
        return &opt.iface;
    default:
        return nullptr;
    }
}

// Where a flag (an option without a value) is kept; nullptr for an option with a value.
bool* flag_option(Target t, Options& opt) {
    if (t == Target::PasswordStdin)
        return &opt.upload.password_stdin;
    if (t == Target::Graph)
        return &opt.graph;
    if (t == Target::Once)
        return &opt.once;
    if (t == Target::ClassHosts)
        return &opt.class_hosts;
    return t == Target::Tree ? &opt.tree : nullptr;
}

std::optional<std::string> apply_option(const OptionSpec& o, const std::vector<std::string>& values,
                                        int flag_count, Options& opt) {
    if (values.empty() && flag_count == 0)
        return std::nullopt;
    const std::string last = values.empty() ? std::string() : values.back();
    const std::string flag(o.flag);
    if (std::string* text = text_option(o.target, opt)) {
        *text = last;
        return std::nullopt;
    }
    if (bool* set = flag_option(o.target, opt)) {
        *set = true;
        return std::nullopt;
    }
    switch (o.target) {
    case Target::Top:
        if (auto n = parse_top(last); n)
            opt.top = *n;
        else
            return "--top: '" + last + "' is not a positive integer (1.." +
                   std::to_string(std::numeric_limits<std::uint32_t>::max()) + ")";
        break;
    case Target::Field:
        if (values.size() > 1 || opt.thresholds.fields.count(std::string(o.key)))
            return "option '" + flag + "' given twice";
        opt.thresholds.fields[std::string(o.key)] = last;
        break;
    case Target::SubjectKind:
        if (values.size() > 1 || opt.thresholds.fields.count("subject"))
            return std::string("give one subject (--interface, --host, --cgroup, --flow, --user or --class)");
        opt.thresholds.fields["subject_kind"] = std::string(o.key);
        opt.thresholds.fields["subject"] = last;
        break;
    case Target::Interval: {
        const auto d = parse_duration(last);
        if (!d || *d < std::chrono::milliseconds(100) || *d > std::chrono::hours(1))
            return "--interval: '" + last + "' is not a duration from 100ms to 1h (e.g. 500ms, 2s)";
        opt.interval_ms = static_cast<std::uint64_t>(d->count());
        break;
    }
    case Target::RefusedPassword:
        return std::string(
            "the password is not accepted on the command line (other users can read it there); "
            "use --password-stdin or --password-file FILE");
    default: // text and flags: above
        break;
    }
    return std::nullopt;
}

// The checks that need the whole command: required options, pairs that exclude each other.
std::optional<std::string> check_verb(const Verb& verb, const std::vector<std::string>& args, Options& opt) {
    const std::string_view sub =
        group_of(verb.name).empty() ? "" : verb.name.substr(group_of(verb.name).size() + 1);
    switch (verb.command) {
    case Command::Thresholds:
        opt.thresholds.sub = std::string(sub);
        opt.thresholds.name = args.empty() ? "" : args.front();
        if (sub == "add" && !opt.thresholds.fields.count("subject"))
            return std::string(
                "thresholds add needs a subject: --interface, --host, --cgroup, --flow, --user or --class");
        if (sub == "add" && !opt.thresholds.fields.count("step"))
            return std::string("thresholds add needs --step SIZE");
        if (sub == "modify" && opt.thresholds.fields.empty())
            return std::string("thresholds modify needs at least one option to change");
        break;
    case Command::Records:
        opt.records.sub = std::string(sub);
        for (const auto& kv : args) {
            auto parsed = parse_setting(kv);
            if (const auto* why = std::get_if<std::string>(&parsed))
                return "records set: " + *why;
            auto& [key, value] = std::get<0>(parsed);
            opt.records.settings[key] = value;
        }
        break;
    case Command::History:
        if ((!opt.output.empty() || opt.layer != "l2") && !opt.graph)
            return std::string("--layer and --output go with --graph");
        if (opt.graph && opt.json)
            return std::string("--graph draws bars; for the figures use --json without --graph");
        if (!graph_layer(opt.layer))
            return "--layer: '" + opt.layer + "' is not one of packets, l2, l3, l4, payload";
        break;
    case Command::Rules:
        opt.rules.sub = std::string(sub);
        opt.rules.file = args.empty() ? "" : args.front();
        if (sub == "compile" && opt.output.empty())
            return std::string("rules compile needs -o BUNDLE, the file to write");
        if (sub == "verify" && opt.rules.key.empty())
            return std::string("rules verify needs --key PUB, the public key file to check with");
        break;
    case Command::Classes:
        if (!opt.iface.empty() && !opt.class_hosts)
            return std::string("classes --iface NAME lists one interface's hosts: add --hosts");
        break;
    case Command::Export:
        opt.exports.sub = std::string(sub);
        opt.exports.urls.assign(args.begin(), args.end());
        break;
    case Command::Upload:
        opt.upload.sub = std::string(sub);
        opt.upload.url = args.empty() ? "" : args.front();
        if (opt.upload.password_stdin && !opt.upload.password_file.empty())
            return std::string("use either --password-stdin or --password-file");
        break;
    default:
        break;
    }
    return std::nullopt;
}

std::optional<std::string> apply(const Verb& verb, Raw& raw, Options& opt) {
    const auto& args = raw.positionals[&verb];
    if (static_cast<int>(args.size()) < verb.min_args)
        return std::string(verb.missing_args);
    if (verb.max_args >= 0 && static_cast<int>(args.size()) > verb.max_args)
        return "unexpected argument '" + args[static_cast<std::size_t>(verb.max_args)] + "'";
    for (const OptionSpec& o : verb.options)
        if (auto err = apply_option(o, raw.values[{&verb, &o}], raw.flags[{&verb, &o}], opt))
            return err;
    opt.command = verb.command;
    return check_verb(verb, args, opt);
}

// "--host: 1 required TEXT missing" -> "option '--host' needs a value".
std::string mismatch_message(const CLI::ArgumentMismatch& e) {
    const std::string what = e.what();
    const std::string name = what.substr(0, what.find(':'));
    if (name.size() > 1 && name[0] == '-')
        return "option '" + name + "' needs a value";
    return what;
}

ParseResult finish(const CLI::App& app, Raw& raw, Options opt) {
    opt.json = raw.json > 0;
    const auto [verb, group] = chosen(app, raw);
    const auto extras = app.remaining(true);
    if (!extras.empty())
        return UsageError{explain_extra(extras.front(), verb, group)};
    if (!raw.timeout.empty()) {
        const auto t = parse_timeout(raw.timeout.back());
        if (!t)
            return UsageError{"--timeout: '" + raw.timeout.back() + "' is not a number of seconds in (0, " +
                              std::to_string(static_cast<int>(kMaxTimeoutSec)) + "]"};
        opt.timeout_sec = *t;
    }
    if (raw.version > 0) {
        opt.command = Command::Version;
        return opt;
    }
    if (!group.empty())
        return UsageError{group + " needs a subcommand: " + joined(group_subcommands(group), ", ", " or ")};
    if (!verb)
        return UsageError{"missing command"};
    if (auto err = apply(*verb, raw, opt))
        return UsageError{*err};
    return opt;
}

} // namespace

ParseResult parse_args(const std::vector<std::string_view>& args) {
    CLI::App app{"nettallyctl", "nettallyctl"};
    Raw raw;
    build(app, raw);
    std::vector<std::string> reversed(args.rbegin(), args.rend()); // CLI11 takes them back to front
    Options help;
    help.command = Command::Help;
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp&) {
        return help;
    } catch (const CLI::CallForAllHelp&) {
        return help;
    } catch (const CLI::ArgumentMismatch& e) {
        return UsageError{mismatch_message(e)};
    } catch (const CLI::ParseError& e) {
        return UsageError{e.what()};
    }
    return finish(app, raw, Options{});
}

std::optional<std::uint32_t> parse_top(std::string_view s) {
    if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    std::uint32_t n = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || end != s.data() + s.size() || n == 0)
        return std::nullopt;
    return n;
}

std::optional<double> parse_timeout(std::string_view s) {
    // Plain decimal only: from_chars would also take "inf", "nan" and exponents.
    const auto dot = s.find('.');
    const auto digits = [](std::string_view p) {
        return std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (s.empty() || s == "." || !digits(s.substr(0, dot)) ||
        (dot != std::string_view::npos && !digits(s.substr(dot + 1))))
        return std::nullopt;
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || !(v > 0) || v > kMaxTimeoutSec)
        return std::nullopt;
    return v;
}

std::variant<std::pair<std::string, SettingValue>, std::string> parse_setting(std::string_view key_value) {
    const auto eq = key_value.find('=');
    if (eq == std::string_view::npos || eq == 0)
        return "expected KEY=VALUE, got '" + std::string(key_value) + "'";
    const std::string key(key_value.substr(0, eq));
    const std::string value(key_value.substr(eq + 1));
    if (key == "enabled" || key == "compress") {
        if (value == "true" || value == "yes" || value == "on")
            return std::pair{key, SettingValue(true)};
        if (value == "false" || value == "no" || value == "off")
            return std::pair{key, SettingValue(false)};
        return key + ": expected true or false, got '" + value + "'";
    }
    if (key == "max_file_size") {
        if (auto n = parse_size(value))
            return std::pair{key, SettingValue(*n)};
        return key + ": expected a size (bytes, or e.g. 64MiB, 1GB), got '" + value + "'";
    }
    if (key == "max_records") {
        if (auto n = parse_uint(value))
            return std::pair{key, SettingValue(*n)};
        return key + ": expected a whole number, got '" + value + "'";
    }
    if (key == "period" || key == "interval" || key == "types")
        return std::pair{key, SettingValue(value)};
    return "unknown setting '" + key +
           "' (enabled, period, interval, types, max_file_size, max_records, compress)";
}

} // namespace nettally::ctl
