// IPFIX export to collectors (README "Flow export (IPFIX)"): one non-blocking socket per collector
// on the daemon's sd-event loop, one IPFIX stream (sequence numbers) each. UDP: every message is
// sent at once or counted as a send error, never waited for; templates and the interface table
// go out at start, every export.template_refresh and before every template_messages-th message.
// TCP: non-blocking connect, reconnect with exponential backoff (1 s .. 60 s), templates at every
// (re)connect; records wait in a queue of at most export.buffer_max (beyond it the oldest are
// dropped, counted and logged once per episode); a message cut by a lost connection is sent again
// whole, with the same sequence number, on the next one.
#pragma once

#include "core/export.h"
#include "core/ipfix.h"
#include "os/event.h"

#include <systemd/sd-event.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace nettally {

struct ExportCollectorStatus {
    std::string url;
    std::string state; // udp: "sending"; tcp: "connecting" | "connected" | "down"
    uint64_t records = 0;
    uint64_t messages = 0;
    uint64_t bytes = 0;
    uint64_t send_errors = 0;
    uint64_t dropped = 0;  // records dropped from a full buffer (TCP)
    uint64_t buffered = 0; // records waiting (TCP)
    uint64_t last_template_us = 0;
    std::string last_error;
};

class IpfixExporter {
public:
    using InterfaceTable = std::function<std::vector<ipfix::InterfaceName>()>;
    using Failed = std::function<void(const std::string& url, const std::string& error)>;

    // Opens every collector's socket (TCP: starts connecting). Throws SysError. ids: the template
    // ids of cfg's layout (ipfix::TemplateRegistry), the same for every collector.
    IpfixExporter(sd_event* ev, const ExportConfig& cfg, const ipfix::TemplateIds& ids, InterfaceTable table,
                  Failed failed = nullptr);
    ~IpfixExporter();
    IpfixExporter(const IpfixExporter&) = delete;
    IpfixExporter& operator=(const IpfixExporter&) = delete;

    // Hands the records to every collector; returns at once.
    void send(const std::vector<ipfix::FlowRecord>& records);
    // Reload: the records each TCP collector still holds (the message being sent, then its queue),
    // by collector URL, taken out so that the next exporter sends them (requeue) instead of a
    // reload losing them.
    std::map<std::string, std::vector<ipfix::FlowRecord>> take_waiting();
    // Puts records taken from an earlier exporter in front of that collector's queue (nothing when
    // this exporter has no such TCP collector).
    void requeue(const std::string& url, const std::vector<ipfix::FlowRecord>& records);
    std::vector<ExportCollectorStatus> status() const;

    class Connection;

private:
    void send_templates();
    ExportConfig cfg_;
    InterfaceTable table_;
    Failed failed_;
    std::vector<std::unique_ptr<Connection>> conns_;
    std::chrono::milliseconds refresh_;
    Timer template_timer_; // UDP template refresh
};

} // namespace nettally
