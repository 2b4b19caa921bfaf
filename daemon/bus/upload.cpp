// org.nettally.Accounting1.Upload: see upload.h and
// daemon/bus/org.nettally.Accounting1.Upload.xml for the contract.
#include "bus/upload.h"

#include "bus/access.h"
#include "bus/accounting.h"
#include "os/error.h"

#include <spdlog/spdlog.h>

namespace nettally {

UploadService::UploadService(sdbus::IConnection& conn, Uploader* uploader)
    : AdaptorInterfaces(conn, kObjectPath), uploader_(uploader) {
    registerAdaptor();
}

UploadService::~UploadService() {
    unregisterAdaptor();
}

UploadEvents UploadService::events() {
    // A signal that cannot be sent must not stop an upload: log it and go on.
    UploadEvents ev;
    ev.succeeded = [this](const std::string& name, const std::string& url, uint64_t bytes) {
        try {
            emitUploadSucceeded(name, url, bytes);
        } catch (const sdbus::Error& e) {
            spdlog::warn("dbus: UploadSucceeded not sent: {}", e.getMessage());
        }
    };
    ev.failed = [this](const std::string& name, const std::string& kind, const std::string& error,
                       uint32_t attempts, uint64_t next) {
        try {
            emitUploadFailed(name, kind, error, attempts, next);
        } catch (const sdbus::Error& e) {
            spdlog::warn("dbus: UploadFailed not sent: {}", e.getMessage());
        }
    };
    ev.dropped = [this](const std::vector<std::string>& names, uint64_t bytes, const std::string& reason) {
        try {
            emitSpoolDropped(names, bytes, reason);
        } catch (const sdbus::Error& e) {
            spdlog::warn("dbus: SpoolDropped not sent: {}", e.getMessage());
        }
    };
    return ev;
}

std::map<std::string, sdbus::Variant> UploadService::GetUploadStatus() {
    std::map<std::string, sdbus::Variant> m;
    if (!uploader_) {
        m["enabled"] = sdbus::Variant(false);
        m["state"] = sdbus::Variant(std::string("disabled"));
        return m;
    }
    const auto s = uploader_->status();
    m["enabled"] = sdbus::Variant(s.enabled);
    m["url"] = sdbus::Variant(s.url);
    m["username"] = sdbus::Variant(s.username);
    m["password_set"] = sdbus::Variant(s.password_set);
    m["target_source"] = sdbus::Variant(s.source);
    m["state"] = sdbus::Variant(s.state);
    m["last_error"] = sdbus::Variant(s.last_error);
    m["next_attempt_at"] = sdbus::Variant(s.next_attempt_us);
    m["consecutive_failures"] = sdbus::Variant(s.consecutive_failures);
    m["uploaded_files"] = sdbus::Variant(s.uploaded_files);
    m["uploaded_bytes"] = sdbus::Variant(s.uploaded_bytes);
    m["failed_attempts"] = sdbus::Variant(s.failed_attempts);
    m["dropped_files"] = sdbus::Variant(s.dropped_files);
    m["dropped_bytes"] = sdbus::Variant(s.dropped_bytes);
    m["spool_dir"] = sdbus::Variant(s.spool_dir);
    m["spool_files"] = sdbus::Variant(s.spool_files);
    m["spool_bytes"] = sdbus::Variant(s.spool_bytes);
    m["spool_max_files"] = sdbus::Variant(s.spool_max_files);
    m["spool_max_bytes"] = sdbus::Variant(s.spool_max_bytes);
    return m;
}

std::vector<sdbus::Struct<std::string, uint64_t, uint64_t, std::string, uint32_t, std::string>>
UploadService::ListSpool() {
    std::vector<sdbus::Struct<std::string, uint64_t, uint64_t, std::string, uint32_t, std::string>> out;
    if (!uploader_)
        return out;
    for (const auto& f : uploader_->spool())
        out.emplace_back(f.name, f.size, f.mtime_us, f.state, f.attempts, f.last_error);
    return out;
}

void UploadService::SetTarget(const std::string& url, const std::string& username,
                              const std::string& password) {
    require_privileged(getObject(), "SetTarget");
    if (!uploader_)
        throw sdbus::Error(kErrFailed, "the uploader is not running");
    try {
        uploader_->set_target(url, username, password);
    } catch (const std::invalid_argument& e) {
        throw sdbus::Error(kErrInvalidArgument, e.what());
    } catch (const SysError& e) {
        throw sdbus::Error(kErrFailed, std::string("cannot save the target: ") + e.what());
    }
}

void UploadService::UploadNow() {
    require_privileged(getObject(), "UploadNow");
    if (!uploader_)
        throw sdbus::Error(kErrFailed, "the uploader is not running");
    uploader_->upload_now();
}

} // namespace nettally
