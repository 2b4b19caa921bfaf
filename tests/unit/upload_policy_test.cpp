// Unit tests for daemon/core/upload_policy: URL rules, spool names and order, remote plans per
// scheme, backoff bounds, result classification, Retry-After, the spool cap, sizes, and the
// config's upload section.
#include "core/config.h"
#include "core/upload.h"

#include <curl/curl.h>
#include <gtest/gtest.h>

namespace nettally {
namespace {

using std::chrono::milliseconds;

std::string why_refused(const std::string& url) {
    std::string why;
    EXPECT_FALSE(parse_upload_url(url, &why).has_value()) << url;
    return why;
}

TEST(UploadUrl, AcceptsEachSchemeAndNormalizesToADirectory) {
    const struct {
        const char* in;
        UploadScheme scheme;
        const char* url;
        const char* dir;
    } cases[] = {
        {"ftp://198.18.0.1:2121/in", UploadScheme::Ftp, "ftp://198.18.0.1:2121/in/", "/in/"},
        {"FTPS://h/", UploadScheme::Ftps, "ftps://h/", "/"},
        {"ftpes://h:21/in", UploadScheme::Ftpes, "ftpes://h:21/in/", "/in/"},
        {"sftp://h/srv/up%20load/", UploadScheme::Sftp, "sftp://h/srv/up%20load/", "/srv/up load/"},
        {"http://[fd00::1]:8080/dav/x", UploadScheme::Http, "http://[fd00::1]:8080/dav/x/", "/dav/x/"},
        {"https://h", UploadScheme::Https, "https://h/", "/"},
        {"file:///var/spool/out", UploadScheme::File, "file:///var/spool/out/", "/var/spool/out/"},
    };
    for (const auto& c : cases) {
        std::string why;
        const auto t = parse_upload_url(c.in, &why);
        ASSERT_TRUE(t) << c.in << ": " << why;
        EXPECT_EQ(t->scheme, c.scheme) << c.in;
        EXPECT_EQ(t->url, c.url) << c.in;
        EXPECT_EQ(t->dir, c.dir) << c.in;
    }
}

TEST(UploadUrl, RefusesCredentialsOtherSchemesAndTricks) {
    EXPECT_NE(why_refused("ftp://user:secret@h/").find("credentials inside the URL"), std::string::npos);
    EXPECT_NE(why_refused("sftp://user@h/x/").find("credentials"), std::string::npos);
    EXPECT_NE(why_refused("scp://h/x/").find("unsupported scheme 'scp'"), std::string::npos);
    EXPECT_NE(why_refused("h/x/").find("not a URL"), std::string::npos);
    EXPECT_NE(why_refused("http://h/x?y=1").find("query"), std::string::npos);
    EXPECT_NE(why_refused("http:///x/").find("no host"), std::string::npos);
    EXPECT_NE(why_refused("http://h/a/../b/").find("'..'"), std::string::npos);
    EXPECT_NE(why_refused("http://h/a b/").find("space"), std::string::npos);
    EXPECT_NE(why_refused("http://h/a%2Fb/").find("percent"), std::string::npos);
    EXPECT_NE(why_refused("sftp://h/~/x/").find("absolute"), std::string::npos);
    EXPECT_NE(why_refused("file://otherhost/x/").find("local directory"), std::string::npos);
}

TEST(SpoolNames, AcceptsFinishedFilesOnly) {
    EXPECT_TRUE(spool_name_ok("gw1_interface_20260101T000000Z_1.csv"));
    EXPECT_TRUE(spool_name_ok("gw1_flow_20260101T000000Z_12.jsonl.gz"));
    EXPECT_FALSE(spool_name_ok(".gw1_flow_20260101T000000Z_12.jsonl.tmp"));
    EXPECT_FALSE(spool_name_ok("x.part"));
    EXPECT_FALSE(spool_name_ok("x.tmp"));
    EXPECT_FALSE(spool_name_ok("a b"));
    EXPECT_FALSE(spool_name_ok("a/b"));
    EXPECT_FALSE(spool_name_ok(""));
}

TEST(SpoolNames, OldestFirstByTimestampThenSequence) {
    std::vector<std::string> names = {"gw_host_20260102T000000Z_1.csv",
                                      "gw_interface_20260101T000000Z_10.csv",
                                      "zzz",
                                      "gw_interface_20260101T000000Z_9.csv",
                                      "aaa",
                                      "my_gw_flow_20251231T235959Z_3.jsonl.gz"};
    std::sort(names.begin(), names.end(), [](const auto& a, const auto& b) { return spool_older(a, b); });
    const std::vector<std::string> want = {"my_gw_flow_20251231T235959Z_3.jsonl.gz",
                                           "gw_interface_20260101T000000Z_9.csv",
                                           "gw_interface_20260101T000000Z_10.csv",
                                           "gw_host_20260102T000000Z_1.csv",
                                           "aaa",
                                           "zzz"};
    EXPECT_EQ(names, want);
}

TEST(RemotePlan, EachSchemeUploadsToPartThenRenames) {
    const auto ftp = plan_remote(*parse_upload_url("ftp://h/in/", nullptr), "f_t_20260101T000000Z_1.csv");
    EXPECT_EQ(ftp.temp_url, "ftp://h/in/f_t_20260101T000000Z_1.csv.part");
    EXPECT_EQ(ftp.final_url, "ftp://h/in/f_t_20260101T000000Z_1.csv");
    EXPECT_EQ(ftp.postquote, (std::vector<std::string>{"RNFR f_t_20260101T000000Z_1.csv.part",
                                                       "RNTO f_t_20260101T000000Z_1.csv"}));
    // Explicit TLS: curl is given ftp:// (with TLS required); the name shown stays ftpes://.
    const auto ftpes = plan_remote(*parse_upload_url("ftpes://h:2121/in/", nullptr), "a.csv");
    EXPECT_EQ(ftpes.temp_url, "ftp://h:2121/in/a.csv.part");
    EXPECT_EQ(ftpes.final_url, "ftpes://h:2121/in/a.csv");
    EXPECT_EQ(ftpes.postquote, (std::vector<std::string>{"RNFR a.csv.part", "RNTO a.csv"}));
    const auto sftp = plan_remote(*parse_upload_url("sftp://h/srv/in", nullptr), "a.csv");
    EXPECT_EQ(sftp.postquote, (std::vector<std::string>{"*rm \"/srv/in/a.csv\"",
                                                        "rename \"/srv/in/a.csv.part\" \"/srv/in/a.csv\""}));
    const auto http = plan_remote(*parse_upload_url("http://h/dav/", nullptr), "a.csv");
    EXPECT_EQ(http.temp_url, "http://h/dav/a.csv.part");
    EXPECT_EQ(http.move_destination, "http://h/dav/a.csv");
    EXPECT_TRUE(http.postquote.empty());
}

TEST(Backoff, FullJitterWithinDoublingCap) {
    const milliseconds min{200}, max{2000};
    EXPECT_EQ(backoff_delay(min, max, 1, 0.0), milliseconds{0});
    EXPECT_EQ(backoff_delay(min, max, 1, 1.0), milliseconds{200});
    EXPECT_EQ(backoff_delay(min, max, 2, 1.0), milliseconds{400});
    EXPECT_EQ(backoff_delay(min, max, 3, 0.5), milliseconds{400});
    EXPECT_EQ(backoff_delay(min, max, 4, 1.0), milliseconds{1600});
    EXPECT_EQ(backoff_delay(min, max, 5, 1.0), milliseconds{2000});
    EXPECT_EQ(backoff_delay(min, max, 4000000000u, 1.0), milliseconds{2000});
    // Every draw stays in [0, cap].
    for (uint32_t f = 1; f < 40; ++f)
        for (double u : {0.0, 0.1, 0.5, 0.99})
            EXPECT_LE(backoff_delay(min, max, f, u), max);
}

TEST(Classify, HttpStatuses) {
    auto http = [](long rc) { return classify_transfer(UploadScheme::Http, {CURLE_OK, rc, ""}, "upload"); };
    EXPECT_EQ(http(201).outcome, UploadOutcome::Success);
    EXPECT_EQ(http(204).outcome, UploadOutcome::Success);
    EXPECT_EQ(http(401).outcome, UploadOutcome::Auth);
    EXPECT_EQ(http(403).outcome, UploadOutcome::Auth);
    EXPECT_EQ(http(503).outcome, UploadOutcome::Transient);
    EXPECT_EQ(http(429).outcome, UploadOutcome::Transient);
    EXPECT_EQ(http(409).outcome, UploadOutcome::Permanent);
    EXPECT_NE(http(401).reason.find("HTTP 401"), std::string::npos);
}

TEST(Classify, FtpAndTransportErrors) {
    auto ftp = [](int code, long rc) {
        return classify_transfer(UploadScheme::Ftp, {code, rc, ""}, "upload").outcome;
    };
    EXPECT_EQ(ftp(CURLE_OK, 226), UploadOutcome::Success);
    EXPECT_EQ(ftp(CURLE_LOGIN_DENIED, 530), UploadOutcome::Auth);
    EXPECT_EQ(ftp(CURLE_UPLOAD_FAILED, 452), UploadOutcome::Transient);
    EXPECT_EQ(ftp(CURLE_UPLOAD_FAILED, 553), UploadOutcome::Permanent);
    EXPECT_EQ(ftp(CURLE_QUOTE_ERROR, 450), UploadOutcome::Transient);
    EXPECT_EQ(ftp(CURLE_COULDNT_CONNECT, 0), UploadOutcome::Transient);
    EXPECT_EQ(ftp(CURLE_OPERATION_TIMEDOUT, 0), UploadOutcome::Transient);
    // A timeout or hang-up right after 331 (password sent, answer pending) is a refused login
    // answered late, not a fault to retry on the transient schedule.
    EXPECT_EQ(ftp(CURLE_OPERATION_TIMEDOUT, 331), UploadOutcome::Auth);
    EXPECT_EQ(ftp(CURLE_GOT_NOTHING, 331), UploadOutcome::Auth);
    EXPECT_EQ(ftp(CURLE_OPERATION_TIMEDOUT, 230), UploadOutcome::Transient); // logged in: a stall
    EXPECT_EQ(ftp(CURLE_OPERATION_TIMEDOUT, 220), UploadOutcome::Transient); // greeting only
    EXPECT_EQ(classify_transfer(UploadScheme::Ftpes, {CURLE_LOGIN_DENIED, 530, ""}, "upload").outcome,
              UploadOutcome::Auth);
    EXPECT_EQ(classify_transfer(UploadScheme::Ftpes, {CURLE_USE_SSL_FAILED, 0, ""}, "upload").outcome,
              UploadOutcome::Permanent);
    EXPECT_NE(classify_transfer(UploadScheme::Ftp, {CURLE_OPERATION_TIMEDOUT, 331, ""}, "upload")
                  .reason.find("check upload.username and the password"),
              std::string::npos);
    EXPECT_EQ(classify_transfer(UploadScheme::Sftp, {CURLE_LOGIN_DENIED, 0, ""}, "upload").outcome,
              UploadOutcome::Auth);
    // Identity: the hint names the keys that apply to the scheme.
    const auto key = classify_transfer(UploadScheme::Sftp, {CURLE_PEER_FAILED_VERIFICATION, 0, ""}, "upload");
    EXPECT_EQ(key.outcome, UploadOutcome::Auth);
    EXPECT_NE(key.reason.find("host key is not the one configured"), std::string::npos) << key.reason;
    EXPECT_NE(key.reason.find("upload.ssh_known_hosts"), std::string::npos) << key.reason;
    EXPECT_EQ(key.reason.find("ca_file"), std::string::npos) << key.reason;
    const auto cert =
        classify_transfer(UploadScheme::Https, {CURLE_PEER_FAILED_VERIFICATION, 0, "self-signed"}, "upload");
    EXPECT_EQ(cert.outcome, UploadOutcome::Auth);
    EXPECT_NE(cert.reason.find("(self-signed)"), std::string::npos) << cert.reason;
    EXPECT_NE(cert.reason.find("upload.ca_file"), std::string::npos) << cert.reason;
    EXPECT_EQ(cert.reason.find("ssh_"), std::string::npos) << cert.reason;
    EXPECT_EQ(classify_transfer(UploadScheme::Http, {CURLE_SEND_ERROR, 0, ""}, "upload").outcome,
              UploadOutcome::Transient);
}

TEST(RetryAfter, SecondsAndHttpDate) {
    EXPECT_EQ(parse_retry_after(" 3 ", 0), milliseconds{3000});
    EXPECT_EQ(parse_retry_after("0", 0), milliseconds{0});
    // 784111777 = Sun, 06 Nov 1994 08:49:37 GMT
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 10), milliseconds{10000});
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 10), milliseconds{0});
    EXPECT_EQ(parse_retry_after("99999999999999", 0), upload_limits::max_retry_after);
    EXPECT_FALSE(parse_retry_after("soon", 0));
    EXPECT_FALSE(parse_retry_after("-5", 0));
    EXPECT_FALSE(parse_retry_after("", 0));
}

TEST(SpoolCap, DropsOldestBeyondFilesAndBytesButNeverTheOneInFlight) {
    const std::vector<SpoolFile> files = {{"g_i_20260101T000300Z_4.csv", 10},
                                          {"g_i_20260101T000000Z_1.csv", 10},
                                          {"g_i_20260101T000200Z_3.csv", 10},
                                          {"g_i_20260101T000100Z_2.csv", 10}};
    EXPECT_EQ(spool_overflow(files, 0, 2, ""),
              (std::vector<std::string>{"g_i_20260101T000000Z_1.csv", "g_i_20260101T000100Z_2.csv"}));
    EXPECT_EQ(spool_overflow(files, 25, 0, ""),
              (std::vector<std::string>{"g_i_20260101T000000Z_1.csv", "g_i_20260101T000100Z_2.csv"}));
    EXPECT_EQ(spool_overflow(files, 0, 3, "g_i_20260101T000000Z_1.csv"),
              (std::vector<std::string>{"g_i_20260101T000100Z_2.csv"}));
    EXPECT_TRUE(spool_overflow(files, 40, 4, "").empty());
    EXPECT_TRUE(spool_overflow(files, 0, 0, "").empty());
}

TEST(Fingerprint, ChangesWithTargetAndCredentialSourceOnly) {
    UploadConfig a;
    a.url = "ftp://h/";
    UploadConfig b = a;
    b.retry_min = milliseconds{100};
    EXPECT_EQ(upload_config_fingerprint(a), upload_config_fingerprint(b));
    b.password = "x";
    EXPECT_NE(upload_config_fingerprint(a), upload_config_fingerprint(b));
    UploadConfig c = a;
    c.username = "ftp://h/";
    c.url = "";
    EXPECT_NE(upload_config_fingerprint(a), upload_config_fingerprint(c));
}

// ---- the config's upload section ----------------------------------------------------------

constexpr const char* rules = "interfaces:\n  - name: eth0\n    role: lan\n";

std::string config_error(const std::string& upload) {
    try {
        parse_config(std::string(rules) + "upload:\n" + upload, "t.yaml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    ADD_FAILURE() << "accepted:\n" << upload;
    return "";
}

TEST(UploadConfigKeys, FullSectionParses) {
    const Config c = parse_config(std::string(rules) + "upload:\n"
                                                       "  url: sftp://198.18.0.1:2222/srv/in\n"
                                                       "  username: acct\n"
                                                       "  password_file: /etc/nettally/upload.pw\n"
                                                       "  retry_min: 200ms\n"
                                                       "  retry_max: 2s\n"
                                                       "  auth_retry: 10m\n"
                                                       "  spool_max_bytes: 100M\n"
                                                       "  spool_max_files: 50\n"
                                                       "  ssh_host_key_sha256: \"SHA256:"
                                                       "nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8\"\n",
                                  "t.yaml");
    EXPECT_EQ(c.upload.url, "sftp://198.18.0.1:2222/srv/in/");
    EXPECT_EQ(c.upload.username, "acct");
    EXPECT_EQ(c.upload.password_file, "/etc/nettally/upload.pw");
    EXPECT_EQ(c.upload.retry_min, milliseconds{200});
    EXPECT_EQ(c.upload.retry_max, milliseconds{2000});
    EXPECT_EQ(c.upload.auth_retry, milliseconds{600000});
    EXPECT_EQ(c.upload.spool_max_bytes, 100ull << 20);
    EXPECT_EQ(c.upload.spool_max_files, 50u);
    EXPECT_EQ(c.upload.ssh_host_key_sha256, "nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8");
}

TEST(UploadConfigKeys, ErrorsNameTheKeyAndNeverTheSecret) {
    EXPECT_EQ(config_error("  url: ftp://u:pw@h/\n"),
              "t.yaml:5:8: upload.url: credentials inside the URL are refused (they would show in logs and "
              "replies); use upload.username and upload.password, password_file or password_credential");
    EXPECT_EQ(config_error("  password: hunter2\n  password_file: /x\n"),
              "t.yaml:6:18: upload.password_file: set only one of password, password_file and "
              "password_credential (also password)");
    EXPECT_EQ(config_error("  retry_min: 5s\n  retry_max: 1s\n"),
              "t.yaml:6:14: upload.retry_max: must not be shorter than upload.retry_min (5s)");
    EXPECT_EQ(config_error("  url: sftp://h/x/\n"),
              "t.yaml:5:8: upload.url: sftp needs the server's host key: set upload.ssh_host_key_sha256 or "
              "upload.ssh_known_hosts (or insecure: true to skip the check)");
    EXPECT_EQ(config_error("  spool_max_bytes: 10mb\n"),
              "t.yaml:5:20: upload.spool_max_bytes: invalid size '10mb' (bytes or with a unit: 512M, 2GB, "
              "1GiB; 0 = no limit)");
    const std::string e = config_error("  password: [hunter2]\n");
    EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
}

} // namespace
} // namespace nettally
