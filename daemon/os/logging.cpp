// Logging setup: see logging.h.
#include "os/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace nettally {
namespace {

class PriorityFlag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        static constexpr std::string_view prio[] = {"<7>", "<7>", "<6>", "<4>", "<3>", "<2>", "<6>"};
        auto p = prio[static_cast<size_t>(msg.level)];
        dest.append(p.data(), p.data() + p.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<PriorityFlag>(); }
};

} // namespace

void setup_logging(bool journal_prefix) {
    auto logger = spdlog::stderr_logger_st("nettallyd");
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    if (journal_prefix)
        formatter->add_flag<PriorityFlag>('*').set_pattern("%*%v");
    else
        formatter->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$: %v");
    logger->set_formatter(std::move(formatter));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
}

bool set_log_level(std::string_view level) {
    if (level == "debug")
        spdlog::set_level(spdlog::level::debug);
    else if (level == "info")
        spdlog::set_level(spdlog::level::info);
    else if (level == "warning")
        spdlog::set_level(spdlog::level::warn);
    else if (level == "error")
        spdlog::set_level(spdlog::level::err);
    else
        return false;
    return true;
}

std::optional<uint64_t> LogLimiter::allow(uint64_t now_us) {
    if (!started_ || now_us >= window_start_us_ + interval_us_ || now_us < window_start_us_) {
        started_ = true;
        window_start_us_ = now_us;
        in_window_ = 0;
    }
    if (in_window_ >= burst_) {
        suppressed_++;
        return std::nullopt;
    }
    in_window_++;
    const uint64_t held = suppressed_;
    suppressed_ = 0;
    return held;
}

} // namespace nettally
