// The verb table: every nettallyctl command with its handler, its help and the options it
// takes. args.cpp builds the CLI11 parser from it, help.cpp the COMMANDS and OPTIONS of
// --help, nettallyctl.cpp dispatches through it. Add a command here and nowhere else.
#pragma once

#include "args.h"

#include <span>
#include <string_view>

namespace nettally::ctl {

// Where an option's value goes in Options.
enum class Target {
    Top,
    Sort,
    Tree,
    Period,
    Subject, // hosts/flows, cgroups, history
    Field,
    SubjectKind, // thresholds add/modify: a definition key
    User,
    PasswordStdin,
    PasswordFile,    // upload set-target
    RefusedPassword, // upload set-target --password: refused with a reason
    Graph,           // history --graph
    Layer,           // history --layer L
    Output,          // history --output FILE
    Once,            // top --once
    Interval,        // top --interval DURATION
    SignKey,         // rules compile --sign KEY
    VerifyKey,       // rules verify --key PUB
    ClassHosts,      // classes --hosts
    Iface,           // classes --iface NAME
};

struct OptionSpec {
    std::string_view flag;  // "--top"
    std::string_view value; // "N"; empty for a flag
    Target target;
    std::string_view key;  // Field/SubjectKind: the definition key ("step", "host")
    std::string_view help; // the OPTIONS line of --help; empty: documented with the command
};

// Runs a parsed command; returns the exit status (format.h ExitCode).
using Handler = int (*)(const Options&);

struct Verb {
    std::string_view name; // "hosts", or "thresholds add" for a subcommand of a group
    Command command;
    Handler run;
    std::string_view synopsis; // "hosts [--top N] [--sort KEY]"
    std::string_view help;     // the paragraph under the synopsis in COMMANDS
    std::span<const OptionSpec> options;
    int min_args = 0;              // positional arguments (NAME, URL, KEY=VALUE...)
    int max_args = 0;              // -1: any number
    std::string_view missing_args; // the usage error when fewer than min_args are given
};

// Every verb, in the order --help lists them. A group ("thresholds") is the common first word
// of its subcommands and has no entry of its own.
std::span<const Verb> verbs();

// The verb named `name` ("hosts", "records set"), or nullptr.
const Verb* find_verb(std::string_view name);

// "thresholds" for "thresholds add"; "" for a verb without a group.
std::string_view group_of(std::string_view verb_name);

// The subcommands' last words of a group, in table order ("list", "usage", ...).
std::vector<std::string_view> group_subcommands(std::string_view group);

} // namespace nettally::ctl
