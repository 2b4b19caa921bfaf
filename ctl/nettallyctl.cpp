// nettallyctl: the command-line client of nettallyd's D-Bus API (org.nettally.Accounting1).
// Parses the command line (args.h) and runs the verb's handler from the verb table (verbs.h).
#include "args.h"
#include "bus.h"
#include "format.h"
#include "verbs.h"

#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#ifndef NT_VERSION
#error "NT_VERSION must be defined by the build"
#endif

namespace nettally::ctl {
namespace {

int main_impl(int argc, char** argv) {
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    const ParseResult parsed = parse_args(args);
    if (const auto* err = std::get_if<UsageError>(&parsed))
        return report_usage_error(err->message);
    const Options& opt = std::get<Options>(parsed);
    if (opt.command == Command::Help) {
        std::cout << help_text("nettallyctl " NT_VERSION);
        return kExitOk;
    }
    if (opt.command == Command::Version) {
        std::cout << "nettallyctl " NT_VERSION "\n";
        return kExitOk;
    }
    for (const Verb& v : verbs())
        if (v.command == opt.command && v.run)
            return v.run(opt);
    return report_usage_error("missing command");
}

} // namespace
} // namespace nettally::ctl

int main(int argc, char** argv) {
    try {
        return nettally::ctl::main_impl(argc, argv);
    } catch (const std::exception& e) {
        // Anything not sdbus::Error (bad_alloc, a reply that does not deserialize into the
        // generated types) happened after the daemon answered.
        std::cerr << "nettallyctl: " << e.what() << "\n";
        return nettally::ctl::kExitDaemonError;
    }
}
