// org.nettally.Accounting1.Records: see records.h and
// daemon/bus/org.nettally.Accounting1.Records.xml for the contract.
#include "bus/records.h"

#include "bus/access.h"
#include "bus/accounting.h"
#include "os/error.h"

#include <spdlog/spdlog.h>

namespace nettally {

RecordsService::RecordsService(sdbus::IConnection& conn, Recorder& recorder)
    : AdaptorInterfaces(conn, kObjectPath), recorder_(recorder) {
    registerAdaptor();
}

RecordsService::~RecordsService() {
    unregisterAdaptor();
}

void RecordsService::file_rotated(const ClosedFile& f) {
    try {
        emitFileRotated(f.name, std::string(to_string(f.type)), f.records, f.bytes,
                        std::string(to_string(f.reason)));
    } catch (const sdbus::Error& e) {
        spdlog::warn("dbus: FileRotated not sent: {}", e.getMessage());
    }
}

nlohmann::json settings_from_variants(const std::map<std::string, sdbus::Variant>& settings) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [key, v] : settings) {
        if (v.containsValueOfType<bool>())
            j[key] = v.get<bool>();
        else if (v.containsValueOfType<std::string>())
            j[key] = v.get<std::string>();
        else if (v.containsValueOfType<uint64_t>())
            j[key] = v.get<uint64_t>();
        else if (v.containsValueOfType<uint32_t>())
            j[key] = v.get<uint32_t>();
        else if (v.containsValueOfType<int64_t>() || v.containsValueOfType<int32_t>()) {
            const int64_t x = v.containsValueOfType<int64_t>() ? v.get<int64_t>() : v.get<int32_t>();
            if (x < 0)
                throw std::invalid_argument(key + ": must not be negative");
            j[key] = static_cast<uint64_t>(x);
        } else
            throw std::invalid_argument(key + ": unsupported value type '" + v.peekValueType() +
                                        "' (use b, s or t)");
    }
    return j;
}

std::map<std::string, sdbus::Variant> RecordsService::GetSettings() {
    const auto& c = recorder_.settings();
    const auto j = settings_to_json(c);
    const auto& s = recorder_.stats();
    std::map<std::string, sdbus::Variant> m;
    m["enabled"] = sdbus::Variant(c.enabled);
    m["period"] = sdbus::Variant(j.at("period").get<std::string>());
    m["interval"] = sdbus::Variant(j.at("interval").get<std::string>());
    m["types"] = sdbus::Variant(j.at("types").get<std::string>());
    m["max_file_size"] = sdbus::Variant(c.max_file_size);
    m["max_records"] = sdbus::Variant(c.max_records);
    m["compress"] = sdbus::Variant(c.compress);
    m["overridden"] = sdbus::Variant(recorder_.overridden_keys());
    m["spool_dir"] = sdbus::Variant(recorder_.spool_dir().string());
    m["current_dir"] = sdbus::Variant(recorder_.current_dir().string());
    m["files_closed"] = sdbus::Variant(s.files_closed);
    m["records_written"] = sdbus::Variant(s.records_written);
    m["recovered_files"] = sdbus::Variant(s.recovered_files);
    m["last_rotation_at"] = sdbus::Variant(static_cast<uint64_t>(s.last_rotation_us));
    m["next_period_end_at"] = sdbus::Variant(static_cast<uint64_t>(s.next_period_end_us));
    m["last_error"] = sdbus::Variant(s.last_error);
    return m;
}

void RecordsService::SetSettings(const std::map<std::string, sdbus::Variant>& settings) {
    require_privileged(getObject(), "SetSettings");
    try {
        auto j = settings_from_variants(settings);
        if (j.contains("reset")) {
            if (!j.at("reset").is_boolean() || !j.at("reset").get<bool>() || j.size() != 1)
                throw std::invalid_argument("reset: must be true and alone");
            recorder_.reset_overrides();
        } else {
            recorder_.set_overrides(j);
        }
        spdlog::info("records: settings changed over D-Bus: {}",
                     settings_to_json(recorder_.settings()).dump());
    } catch (const std::invalid_argument& e) {
        throw sdbus::Error(kErrInvalidArgument, e.what());
    } catch (const std::exception& e) {
        throw sdbus::Error(kErrFailed, e.what());
    }
}

std::vector<std::string> RecordsService::Rotate() {
    require_privileged(getObject(), "Rotate");
    std::vector<std::string> names;
    try {
        for (const auto& c : recorder_.rotate_now())
            names.push_back(c.name);
    } catch (const std::exception& e) {
        throw sdbus::Error(kErrFailed, e.what());
    }
    return names;
}

std::vector<sdbus::Struct<std::string, uint64_t, std::string, uint64_t>> RecordsService::ListSpool() {
    std::vector<sdbus::Struct<std::string, uint64_t, std::string, uint64_t>> out;
    for (const auto& e : recorder_.list_spool())
        out.emplace_back(e.name, e.size, e.type, static_cast<uint64_t>(e.created_us));
    return out;
}

} // namespace nettally
