// The handlers of the verb table (verbs.cpp): each connects to the system bus, makes its calls
// through the generated proxies, converts the answer (convert.h) and prints the formatted
// result (format.h) in one piece, so a failed call leaves stdout empty.
#pragma once

#include "args.h"

namespace nettally::ctl {

// commands.cpp: org.nettally.Accounting1
int run_status(const Options& opt);
int run_interfaces(const Options& opt);
int run_hosts(const Options& opt);
int run_flows(const Options& opt);
int run_cgroups(const Options& opt);
int run_history(const Options& opt);
int run_reload(const Options& opt);
// commands_thresholds.cpp: org.nettally.Accounting1.Thresholds
int run_thresholds(const Options& opt);
int run_watch(const Options& opt);
// commands_records.cpp: org.nettally.Accounting1.Records and .Upload
int run_records(const Options& opt);
int run_upload(const Options& opt);
// commands_top.cpp: rates from repeated readings
int run_top(const Options& opt);
// commands_export.cpp: org.nettally.Accounting1.Export
int run_export(const Options& opt);

} // namespace nettally::ctl
