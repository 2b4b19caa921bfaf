// The handlers of the verb table (verbs.cpp): each connects to the system bus, makes its calls
// through the generated proxies, converts the answer (convert.h) and prints the formatted
// result (format.h) in one piece, so a failed call leaves stdout empty.
#pragma once

#include "args.h"
#include "format.h"

#include <sdbus-c++/sdbus-c++.h>
#include <vector>

namespace nettally::ctl {

// A verb's handler: runs it and returns the exit status (format.h ExitCode).
using RunCommand = int(const Options& opt);

// commands.cpp: org.nettally.Accounting1
RunCommand run_status, run_interfaces, run_hosts, run_flows, run_cgroups, run_history, run_reload;
// commands_thresholds.cpp: org.nettally.Accounting1.Thresholds
RunCommand run_thresholds, run_watch;
// commands_records.cpp: org.nettally.Accounting1.Records and .Upload
RunCommand run_records, run_upload;
// commands_top.cpp: rates from repeated readings
RunCommand run_top;
// commands_export.cpp: org.nettally.Accounting1.Export
RunCommand run_export;
// commands_subscribers.cpp: org.nettally.Accounting1.Subscribers
RunCommand run_subscribers, run_users;
// commands_rules.cpp: traffic class rules (compile runs locally, without the bus)
RunCommand run_rules, run_classes;
// The user of each host (ListHostUsers) filled into rows; left nullopt when the daemon has no
// subscribers configured or no Subscribers interface (an older nettallyd).
void add_host_users(sdbus::IConnection& connection, std::vector<HostRow>& rows);
// The same for flows, by their lan host's address (ingress: src, egress: dst).
void add_flow_users(sdbus::IConnection& connection, std::vector<FlowRow>& rows);

} // namespace nettally::ctl
