import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ZoomSim

@Suite("OAuth")
struct OAuthTests {
    @Test func serverToServerToken() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let reply = try await client.call(
                .post,
                "/oauth/token?grant_type=account_credentials&account_id=AcctSim1",
                basic: ("abc123", "s3cret")
            )
            #expect(reply.status == 200)
            #expect(reply.body["token_type"] == "bearer")
            #expect(reply.body["expires_in"] == 3600)
            #expect(reply.body["api_url"] == "http://127.0.0.1:9999")
            #expect(reply.body["scope"]?.stringValue?.isEmpty == false)
            #expect(reply.body["refresh_token"] == nil)

            // Form body instead of query.
            let form = try await client.call(
                .post,
                "/oauth/token",
                basic: ("abc123", "s3cret"),
                form: "grant_type=account_credentials&account_id=AcctSim1"
            )
            #expect(form.status == 200)

            let bad = try await client.call(
                .post,
                "/oauth/token?grant_type=account_credentials&account_id=AcctSim1",
                basic: ("abc123", "wrong")
            )
            #expect(bad.status == 401)
            #expect(bad.body["error"] == "invalid_client")
            #expect(bad.body["reason"] == "Invalid client_id or client_secret")
            #expect(bad.code == 4702)

            let noAuth = try await client.call(.post, "/oauth/token?grant_type=account_credentials&account_id=AcctSim1")
            #expect(noAuth.status == 401)

            let account = try await client.call(
                .post,
                "/oauth/token?grant_type=account_credentials&account_id=Other",
                basic: ("abc123", "s3cret")
            )
            #expect(account.status == 400)

            let grant = try await client.call(.post, "/oauth/token?grant_type=password", basic: ("abc123", "s3cret"))
            #expect(grant.code == 4705)

            let tokens = try await client.call(.get, "/_sim/tokens")
            #expect(tokens.body["requests"]?["account_credentials"] == 5)
            #expect(tokens.body["live_access_tokens"] == 2)

            // The log has the grant type and never the secret or token.
            let log = try await client.call(.get, "/_sim/requests")
            let text = log.body.serialized()
            #expect(!text.contains("s3cret"))
            #expect(!text.contains(reply.body["access_token"]?.stringValue ?? "-"))
            #expect(log.body.arrayValue?.first?["grant_type"] == "account_credentials")
        }
    }

    @Test func userOAuthWithPKCEAndRotation() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
            // RFC 7636 appendix B: BASE64URL(SHA256(verifier)).
            let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
            let redirect = "https://sitroom.example.org/zoom/callback"
            let authorize = try await client.execute(
                uri: "/oauth/authorize?response_type=code&client_id=user-app&redirect_uri=\(redirect)"
                    + "&state=xyz&code_challenge=\(challenge)&code_challenge_method=S256&sim_user=bridge-2@example.com",
                method: .get
            ) { $0 }
            #expect(authorize.status == .found)
            let location = try #require(authorize.headers[.location])
            #expect(location.hasPrefix(redirect + "?code="))
            #expect(location.hasSuffix("&state=xyz"))
            let code = String(location.dropFirst((redirect + "?code=").count).prefix { $0 != "&" })

            let wrongVerifier = try await client.call(
                .post,
                "/oauth/token",
                basic: ("user-app", "u-s3cret"),
                form: "grant_type=authorization_code&code=\(code)&redirect_uri=\(redirect)&code_verifier=nope"
            )
            #expect(wrongVerifier.status == 400)

            // A code is single use: get another one through the test surface.
            let fresh = try await client.call(
                .post,
                "/_sim/authorize",
                json: [
                    "client_id": "user-app", "user": "bridge-2@example.com", "redirect_uri": .string(redirect),
                    "code_challenge": .string(challenge),
                ]
            )
            let code2 = try #require(fresh.body["code"]?.stringValue)
            let mismatch = try await client.call(
                .post,
                "/oauth/token",
                basic: ("user-app", "u-s3cret"),
                form:
                    "grant_type=authorization_code&code=\(code2)&redirect_uri=https://evil.example&code_verifier=\(verifier)"
            )
            #expect(mismatch.code == 4709)

            let code3 = try #require(
                try await client.call(
                    .post,
                    "/_sim/authorize",
                    json: [
                        "client_id": "user-app", "user": "bridge-2@example.com", "redirect_uri": .string(redirect),
                        "code_challenge": .string(challenge),
                    ]
                ).body["code"]?.stringValue
            )
            let pair = try await client.call(
                .post,
                "/oauth/token",
                basic: ("user-app", "u-s3cret"),
                form: "grant_type=authorization_code&code=\(code3)&redirect_uri=\(redirect)&code_verifier=\(verifier)"
            )
            #expect(pair.status == 200, "\(pair.body.serialized())")
            let access = try #require(pair.body["access_token"]?.stringValue)
            let refresh = try #require(pair.body["refresh_token"]?.stringValue)

            let me = try await client.call(.get, "/v2/users/me", bearer: access)
            #expect(me.body["email"] == "bridge-2@example.com")
            let other = try await client.call(.get, "/v2/users/bridge-1@example.com", bearer: access)
            #expect(other.code == 1001)

            let rotated = try await client.call(
                .post,
                "/oauth/token?grant_type=refresh_token&refresh_token=\(refresh)",
                basic: ("user-app", "u-s3cret")
            )
            #expect(rotated.status == 200)
            let newRefresh = try #require(rotated.body["refresh_token"]?.stringValue)
            #expect(newRefresh != refresh)
            let reused = try await client.call(
                .post,
                "/oauth/token?grant_type=refresh_token&refresh_token=\(refresh)",
                basic: ("user-app", "u-s3cret")
            )
            #expect(reused.status == 400)
            // No code, as Zoom answers it.
            #expect(
                reused.body["reason"] == "Invalid Token!" && reused.body["error"] == "invalid_grant"
                    && reused.code == nil
            )

            let created = try await client.createMeeting(access, user: "me")
            #expect(created.status == 201)
            #expect(created.body["host_email"] == "bridge-2@example.com")

            let revoke = try await client.call(
                .post,
                "/oauth/revoke",
                basic: ("user-app", "u-s3cret"),
                form: "token=\(newRefresh)"
            )
            #expect(revoke.status == 200)
            let after = try await client.call(
                .post,
                "/oauth/token?grant_type=refresh_token&refresh_token=\(newRefresh)",
                basic: ("user-app", "u-s3cret")
            )
            #expect(after.status == 400 && after.body["error"] == "invalid_grant")
            let log = try await client.call(.get, "/_sim/requests").body.serialized()
            #expect(!log.contains(refresh) && !log.contains(code3) && !log.contains(verifier))
        }
    }

    @Test func revokedAppAndExpiredTokens() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "expire_tokens"])
            #expect(try await client.call(.get, "/v2/users", bearer: token).code == 124)
            let token2 = try await client.s2sToken()
            #expect(try await client.call(.get, "/v2/users", bearer: token2).status == 200)

            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "revoke_app", "client_id": "abc123"])
            #expect(try await client.call(.get, "/v2/users", bearer: token2).code == 124)
            let refused = try await client.call(
                .post,
                "/oauth/token?grant_type=account_credentials&account_id=AcctSim1",
                basic: ("abc123", "s3cret")
            )
            #expect(refused.code == 4717)
            _ = try await client.call(.delete, "/_sim/faults")
            _ = try await client.s2sToken()
        }
    }
}

@Suite("Meetings")
struct MeetingTests {
    @Test func createAnswersZoomFields() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            let reply = try await client.createMeeting(token)
            #expect(reply.status == 201)
            let body = reply.body
            for field in [
                "id", "uuid", "host_id", "host_email", "topic", "type", "status", "start_time", "duration", "timezone",
                "agenda", "created_at", "start_url", "join_url", "password", "h323_password", "pstn_password",
                "encrypted_password", "settings",
            ] {
                #expect(body[field] != nil, "missing \(field)")
            }
            let id = try #require(body["id"]?.intValue)
            #expect(id >= 10_000_000_000)
            #expect(body["host_id"] == "u1abc")
            #expect(body["status"] == "waiting")
            #expect(body["agenda"] == "sitroom:room=r1")
            #expect(body["start_time"] == "2026-01-01T10:00:00Z")
            #expect(body["join_url"]?.stringValue?.hasPrefix("http://127.0.0.1:9999/j/\(id)?pwd=") == true)
            #expect(body["password"]?.stringValue?.isEmpty == false)

            let given = try await client.call(
                .post,
                "/v2/users/u1abc/meetings",
                bearer: token,
                json: ["topic": "x", "type": 2, "start_time": "2026-01-01T10:00:00Z", "password": "abc123"]
            )
            #expect(given.body["password"] == "abc123")
            let none = try await client.call(
                .post,
                "/v2/users/u1abc/meetings",
                bearer: token,
                json: ["topic": "x", "type": 2, "start_time": "2026-01-01T10:00:00Z", "password": ""]
            )
            #expect(none.body["password"] == "")
            #expect(none.body["settings"]?["waiting_room"] == true)
            let invalid = try await client.call(
                .post,
                "/v2/users/u1abc/meetings",
                bearer: token,
                json: ["topic": "x", "password": "far-too-long-passcode"]
            )
            #expect(invalid.status == 400 && invalid.code == 300)

            let fetched = try await client.call(.get, "/v2/meetings/\(id)", bearer: token)
            #expect(fetched.status == 200)
            #expect(fetched.body["join_url"] == body["join_url"])

            let sim = try await client.call(.get, "/_sim/meetings")
            #expect(sim.body.arrayValue?.count == 3)
            #expect(sim.body.arrayValue?.first?["host_email"] == "bridge-1@example.com")
            #expect(!sim.body.serialized().contains("zak="))
        }
    }

    @Test func authAndUserErrors() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let missing = try await client.call(.get, "/v2/users/me")
            #expect(missing.status == 401 && missing.code == 124)
            #expect(missing.body["message"] == "Invalid access token.")
            let bad = try await client.createMeeting("not-a-token")
            #expect(bad.status == 401 && bad.code == 124)

            let token = try await client.s2sToken()
            let unknown = try await client.createMeeting(token, user: "nobody@example.com")
            #expect(unknown.status == 404 && unknown.code == 1001)
            #expect(unknown.body["message"]?.stringValue?.hasPrefix("User does not exist: nobody@example.com") == true)
            let noHosting = try await client.createMeeting(token, user: "basic@example.com")
            #expect(noHosting.code == 3161)
            let user = try await client.call(.get, "/v2/users/bridge-1@example.com", bearer: token)
            #expect(user.body["id"] == "u1abc" && user.body["type"] == 2)
            let gone = try await client.call(.get, "/v2/meetings/12345678901", bearer: token)
            #expect(gone.status == 404 && gone.code == 3001)
        }
    }

    @Test func listPaginates() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            var created: [Int64] = []
            for index in 0..<5 {
                let reply = try await client.createMeeting(
                    token,
                    user: "bridge-2@example.com",
                    agenda: "sitroom:room=r\(index)"
                )
                created.append(try #require(reply.body["id"]?.intValue))
            }
            var seen: [Int64] = []
            var next = ""
            var pages = 0
            repeat {
                let reply = try await client.call(
                    .get,
                    "/v2/users/u2abc/meetings?page_size=2&next_page_token=\(next)",
                    bearer: token
                )
                #expect(reply.status == 200)
                #expect(reply.body["total_records"] == 5)
                #expect(reply.body["page_size"] == 2)
                let meetings = try #require(reply.body["meetings"]?.arrayValue)
                #expect(meetings.count <= 2)
                seen += meetings.compactMap { $0["id"]?.intValue }
                next = reply.body["next_page_token"]?.stringValue ?? ""
                pages += 1
            } while !next.isEmpty && pages < 10
            #expect(pages == 3)
            #expect(seen == created)
            let item = try await client.call(.get, "/v2/users/u2abc/meetings", bearer: token).body["meetings"]?
                .arrayValue?.first
            #expect(item?["agenda"] == "sitroom:room=r0")
            #expect(item?["join_url"] != nil && item?["uuid"] != nil && item?["host_id"] == "u2abc")
            let bogus = try await client.call(.get, "/v2/users/u2abc/meetings?next_page_token=garbage", bearer: token)
            #expect(bogus.status == 400)
        }
    }

    @Test func endThenDelete() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            let id = try #require(try await client.createMeeting(token).body["id"]?.intValue)
            #expect(try await client.call(.post, "/_sim/meetings/\(id)/start").status == 200)
            #expect(try await client.call(.get, "/v2/meetings/\(id)", bearer: token).body["status"] == "started")

            let inProgress = try await client.call(.delete, "/v2/meetings/\(id)", bearer: token)
            #expect(inProgress.status == 400 && inProgress.code == 3002)

            let end = try await client.call(.put, "/v2/meetings/\(id)/status", bearer: token, json: ["action": "end"])
            #expect(end.status == 204)
            #expect(try await client.call(.get, "/_sim/meetings").body.arrayValue?.first?["status"] == "ended")

            let delete = try await client.call(.delete, "/v2/meetings/\(id)", bearer: token)
            #expect(delete.status == 204)
            let again = try await client.call(.delete, "/v2/meetings/\(id)", bearer: token)
            #expect(again.status == 404 && again.code == 3001)
            #expect(again.body["message"] == .string("Meeting does not exist: \(id)."))
            #expect(try await client.call(.get, "/v2/meetings/\(id)", bearer: token).code == 3001)
            #expect(
                try await client.call(.patch, "/v2/meetings/\(id)", bearer: token, json: ["topic": "x"]).code == 3001
            )
            let sim = try await client.call(.get, "/_sim/meetings").body.arrayValue?.first
            #expect(sim?["status"] == "deleted")
            // The old link no longer works.
            let joinPath =
                sim?["join_url"]?.stringValue?.replacingOccurrences(of: "http://127.0.0.1:9999", with: "") ?? "/"
            #expect(try await client.call(.get, joinPath).status == 404)
        }
    }

    @Test func patchUpdates() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            let id = try #require(try await client.createMeeting(token).body["id"]?.intValue)
            let patch = try await client.call(
                .patch,
                "/v2/meetings/\(id)",
                bearer: token,
                json: ["topic": "new", "settings": ["waiting_room": true]]
            )
            #expect(patch.status == 204)
            let fetched = try await client.call(.get, "/v2/meetings/\(id)", bearer: token).body
            #expect(fetched["topic"] == "new")
            #expect(fetched["settings"]?["waiting_room"] == true)
            #expect(fetched["settings"]?["audio"] == "voip")
        }
    }

    @Test func concurrencyIsRecorded() async throws {
        let harness = Harness(Harness.configuration(concurrent: 1))
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            let first = try #require(try await client.createMeeting(token).body["id"]?.intValue)
            _ = try await client.call(.put, "/v2/meetings/\(first)/status", bearer: token, json: ["action": "end"])
            _ = try await client.createMeeting(token)
            var users = try await client.call(.get, "/_sim/users").body.arrayValue ?? []
            #expect(users.first?["max_live_seen"] == 1)
            #expect(users.first?["oversubscribed"] == false)
            _ = try await client.createMeeting(token)  // Zoom allows it; the sim records it
            users = try await client.call(.get, "/_sim/users").body.arrayValue ?? []
            #expect(users.first?["max_live_seen"] == 2)
            #expect(users.first?["oversubscribed"] == true)
            #expect(users.first?["live"] == 2)
        }
    }
}

@Suite("Limits")
struct LimitTests {
    @Test func dailyLimitAndMidnight() async throws {
        let harness = Harness(Harness.configuration(dailyLimit: 2))
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            #expect(try await client.createMeeting(token).status == 201)
            let id = try #require(try await client.createMeeting(token).body["id"]?.intValue)
            let over = try await client.createMeeting(token)
            #expect(over.status == 429 && over.code == 429)
            #expect(
                over.body["message"]
                    == "You have exceeded the daily rate limit (2) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00."
            )
            // Updates count too.
            #expect(
                try await client.call(.patch, "/v2/meetings/\(id)", bearer: token, json: ["topic": "t"]).status == 429
            )
            // Other hosts are unaffected.
            #expect(try await client.createMeeting(token, user: "bridge-2@example.com").status == 201)
            _ = try await client.call(.post, "/_sim/clock", json: ["advance_days": 1])
            #expect(try await client.createMeeting(token).status == 201)

            _ = try await client.call(
                .post,
                "/_sim/faults",
                json: ["kind": "daily_limit", "user": "bridge-2@example.com"]
            )
            #expect(try await client.createMeeting(token, user: "bridge-2@example.com").status == 429)
            _ = try await client.call(.delete, "/_sim/faults")
            #expect(try await client.createMeeting(token, user: "bridge-2@example.com").status == 201)
        }
    }

    @Test func perSecondLimitHasRetryAfter() async throws {
        let harness = Harness(Harness.configuration(mediumPerSecond: 2))
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            var limited: SimReply?
            for _ in 0..<10 {
                let reply = try await client.call(.get, "/v2/users/u1abc/meetings", bearer: token)
                if reply.status == 429 {
                    limited = reply
                    break
                }
            }
            let reply = try #require(limited)
            #expect(
                reply.body["message"]
                    == "You have reached the maximum per-second rate limit for this API. Try again later."
            )
            #expect(reply.headers[.retryAfter] == "1")
            // Light operations have their own budget (unlimited here).
            #expect(try await client.call(.get, "/v2/users/u1abc", bearer: token).status == 200)
        }
    }
}

@Suite("Faults")
struct FaultTests {
    @Test func holdCreateReply() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            let fault = try await client.call(.post, "/_sim/faults", json: ["kind": "hold_create_reply", "count": 1])
            #expect(fault.status == 200)
            let pending = Task { try await client.createMeeting(token) }
            try await eventually {
                try await client.call(.get, "/_sim/meetings").body.arrayValue?.count == 1
            }
            try await eventually { await harness.state.heldCount == 1 }
            let log = try await client.call(.get, "/_sim/requests").body.arrayValue ?? []
            #expect(log.last?["outcome"] == "held")
            #expect(log.last?["status"] == .null)
            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "release"])
            let reply = try await pending.value
            #expect(reply.status == 201)
            // Only the first create was held.
            #expect(try await client.createMeeting(token).status == 201)
        }
    }

    @Test func statusAndLatencyFaults() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            _ = try await client.call(
                .post,
                "/_sim/faults",
                json: ["kind": "status", "path_prefix": "/v2/users", "status": 503, "count": 2]
            )
            #expect(try await client.call(.get, "/v2/users", bearer: token).status == 503)
            #expect(try await client.call(.get, "/v2/users", bearer: token).status == 503)
            #expect(try await client.call(.get, "/v2/users", bearer: token).status == 200)

            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "latency", "seconds": 0.15])
            let start = ContinuousClock.now
            #expect(try await client.call(.get, "/v2/users", bearer: token).status == 200)
            #expect(ContinuousClock.now - start >= .milliseconds(140))
            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "clear"])

            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "error_create_reply", "status": 502])
            #expect(try await client.createMeeting(token).status == 502)
            #expect(try await client.call(.get, "/_sim/meetings").body.arrayValue?.count == 1)
        }
    }
}

@Suite("Live server")
struct LiveTests {
    @Test func keepAliveSharesAConnection() async throws {
        let harness = Harness()
        try await harness.app.test(.live) { client in
            let token = try await client.s2sToken()
            #expect(try await client.createMeeting(token).status == 201)
            #expect(try await client.call(.get, "/v2/users/me", bearer: token).status == 200)
            let log = try await client.call(.get, "/_sim/requests").body.arrayValue ?? []
            #expect(log.count == 3)
            let connections = Set(log.compactMap { $0["connection"]?.intValue })
            #expect(connections.count == 1)
            // api_url carries the real port.
            let base = await harness.state.baseURL
            #expect(base.hasPrefix("http://127.0.0.1:") && !base.hasSuffix(":0"))
        }
    }

    @Test func dropCreateReplyClosesTheConnection() async throws {
        let harness = Harness()
        try await harness.app.test(.live) { client in
            let token = try await client.s2sToken()
            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "drop_create_reply"])
            await #expect(throws: (any Error).self) {
                _ = try await client.createMeeting(token)
            }
        }
        let meetings = await harness.state.allMeetings()
        #expect(meetings.count == 1)
    }
}

@Suite("Configuration")
struct ConfigurationTests {
    @Test func secretFileModeIsChecked() async throws {
        try await withTemporaryDirectory { dir in
            let etc = dir.appendingPathComponent("etc")
            let secrets = etc.appendingPathComponent("secrets")
            try FileManager.default.createDirectory(at: secrets, withIntermediateDirectories: true)
            let secret = secrets.appendingPathComponent("zoom-sim.secret")
            try "  topsecret \n".write(to: secret, atomically: true, encoding: .utf8)
            let config = etc.appendingPathComponent("zoom-sim.yaml")
            try """
            apps:
              - client_id: abc123
                client_secret_file: secrets/zoom-sim.secret
                account_id: AcctSim1
                kind: s2s
            users:
              - id: u1abc
                email: bridge-1@example.com
                type: 2
                concurrent_meetings: 1
            limits:
              daily_create_limit: 100
              medium_per_second: 20
            token_expires_in: 3600
            refresh_token_lifetime: 7776000
            """.write(to: config, atomically: true, encoding: .utf8)

            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: secret.path)
            let error = #expect(throws: SimConfigurationError.self) {
                try SimConfiguration.load(path: config.path)
            }
            #expect(error?.message.contains("0644") == true)
            #expect(error?.message.contains(secret.path) == true)

            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: secret.path)
            let loaded = try SimConfiguration.load(path: config.path)
            #expect(loaded.apps.first?.clientSecret == "topsecret")
            #expect(loaded.apps.first?.kind == .s2s)
            #expect(loaded.users.first?.concurrentMeetings == 1)
            #expect(loaded.limits.mediumPerSecond == 20)
            #expect(loaded.tokenExpiresIn == 3600)
        }
    }

    @Test func unknownKeysAreRefused() async throws {
        try await withTemporaryDirectory { dir in
            let config = dir.appendingPathComponent("sim.yaml")
            try "users:\n  - id: u1\n    email: a@example.com\n    concurent_meetings: 2\n"
                .write(to: config, atomically: true, encoding: .utf8)
            let error = #expect(throws: SimConfigurationError.self) { try SimConfiguration.load(path: config.path) }
            #expect(
                error?.message.contains("sim.yaml:4:5: unknown key 'concurent_meetings'") == true,
                "\(String(describing: error))"
            )
        }
    }
}

@Suite("Zoom's refusals")
struct RefusalTests {
    static func create(
        _ client: some TestClientProtocol,
        _ token: String,
        _ fields: [(String, JSON)]
    ) async throws -> SimReply {
        var body: [(String, JSON)] = [("topic", "t"), ("type", 2), ("start_time", "2026-01-01T10:00:00Z")]
        body.removeAll { member in fields.contains { $0.0 == member.0 } }
        body += fields
        return try await client.call(.post, "/v2/users/u1abc/meetings", bearer: token, json: .object(body))
    }

    @Test("a refused field answers 300 Validation Failed. with errors[] naming it")
    func validation() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            let topic = try await Self.create(client, token, [("topic", .string(String(repeating: "t", count: 201)))])
            #expect(topic.status == 400 && topic.code == 300 && topic.body["message"] == "Validation Failed.")
            #expect(topic.body["errors"]?.arrayValue?.first?["field"] == "topic")
            let agenda = try await Self.create(
                client,
                token,
                [("agenda", .string(String(repeating: "a", count: 2001)))]
            )
            #expect(agenda.body["errors"]?.arrayValue?.first?["field"] == "agenda")
            #expect(try await Self.create(client, token, [("password", "abcdefghijk")]).code == 300)
            // Nothing was made, and nothing was counted against the host's daily limit.
            let users = try await client.call(.get, "/_sim/users")
            #expect(users.body.arrayValue?.first?["creates_today"] == 0)
        }
    }

    @Test("alternative hosts: semicolon-separated licensed users of the account; others refused on that field")
    func alternativeHosts() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            // bridge-2 is licensed (type 2) in the same account: accepted, by email or id, semicolon-separated.
            let ok = try await Self.create(
                client,
                token,
                [("settings", ["alternative_hosts": "bridge-2@example.com;u2abc"])]
            )
            #expect(ok.status == 201)
            #expect(ok.body["settings"]?["alternative_hosts"] == "bridge-2@example.com;u2abc")
            for refused in [
                "bridge-2@example.com,u2abc", "basic@example.com", "stranger@example.org", "bridge-1@example.com",
            ] {
                let reply = try await Self.create(
                    client,
                    token,
                    [("settings", ["alternative_hosts": .string(refused)])]
                )
                #expect(reply.status == 400 && reply.code == 300, "\(refused)")
                #expect(reply.body["errors"]?.arrayValue?.first?["field"] == "settings.alternative_hosts")
            }
        }
    }

    @Test("an account passcode policy refuses passcodes that break it")
    func passcodePolicy() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            #expect(try await Self.create(client, token, [("password", "abcdef")]).status == 201)
            _ = try await client.call(
                .post,
                "/_sim/faults",
                json: [
                    "kind": "passcode_policy", "min_length": 8, "require_letter": true, "require_digit": true,
                    "require_special": true,
                ]
            )
            let weak = try await Self.create(client, token, [("password", "abcdef12")])
            #expect(weak.code == 300 && weak.body["errors"]?.arrayValue?.first?["field"] == "password")
            #expect(
                weak.body["errors"]?.arrayValue?.first?["message"]?.stringValue?.contains("a special character") == true
            )
            #expect(try await Self.create(client, token, [("password", "ab-cd_12")]).status == 201)
            _ = try await client.call(.delete, "/_sim/faults")
            #expect(try await Self.create(client, token, [("password", "abcdef")]).status == 201)
        }
    }

    @Test("the daily limit: 429 with X-RateLimit-Type and an RFC 3339 Retry-After, bare 429, or 300 with its message")
    func dailyLimitAnswers() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "daily_limit", "user": "u1abc"])
            let limited = try await client.createMeeting(token)
            #expect(limited.status == 429 && limited.code == 429)
            #expect(limited.headers[HTTPFields.Element.Name("X-RateLimit-Type")!] == "Daily-limit")
            let retry = try #require(limited.headers[.retryAfter])
            let midnight = try Date(retry, strategy: .iso8601)
            #expect(midnight.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400) == 0)
            #expect(midnight > Date() && midnight.timeIntervalSinceNow <= 86_400)
            _ = try await client.call(
                .post,
                "/_sim/faults",
                json: ["kind": "daily_limit", "user": "u1abc", "answer": "429_bare"]
            )
            let bare = try await client.createMeeting(token)
            #expect(bare.status == 429 && bare.headers[.retryAfter] == nil)
            _ = try await client.call(
                .post,
                "/_sim/faults",
                json: ["kind": "daily_limit", "user": "u1abc", "answer": "300"]
            )
            let old = try await client.createMeeting(token)
            #expect(old.status == 400 && old.code == 300)
            #expect(
                old.body["message"] == "A maximum of 100 meetings can be created/updated for a single user in one day."
            )
            let bad = try await client.call(
                .post,
                "/_sim/faults",
                json: ["kind": "daily_limit", "user": "u1abc", "answer": "500"]
            )
            #expect(bad.status == 400)
        }
    }

    @Test("API-side 4711 names the scopes a token lacks; a token issued after the scope is added works")
    func missingScope() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            _ = try await client.call(
                .post,
                "/_sim/faults",
                json: ["kind": "scopes", "client_id": "abc123", "scopes": ["meeting:read:admin", "user:read:admin"]]
            )
            let narrow = try await client.s2sToken()
            let refused = try await client.createMeeting(narrow)
            #expect(refused.status == 400 && refused.code == 4711)
            #expect(
                refused.body["message"]
                    == "Invalid access token, does not contain scopes:[meeting:write:meeting, meeting:write:meeting:admin]."
            )
            #expect(try await client.call(.get, "/v2/users/u1abc/meetings", bearer: narrow).status == 200)
            // The admin adds a granular scope: old tokens still lack it, a new one has it.
            _ = try await client.call(
                .post,
                "/_sim/faults",
                json: [
                    "kind": "scopes", "client_id": "abc123",
                    "scopes": ["meeting:read:admin", "meeting:write:meeting:admin"],
                ]
            )
            #expect(try await client.createMeeting(narrow).code == 4711)
            let wide = try await client.s2sToken()
            #expect(try await client.createMeeting(wide).status == 201)
            let scope = try await client.call(
                .post,
                "/oauth/token?grant_type=account_credentials&account_id=AcctSim1",
                basic: ("abc123", "s3cret")
            )
            #expect(scope.body["scope"] == "meeting:read:admin meeting:write:meeting:admin")
        }
    }

    @Test("delete of an ended meeting answers 3007 when switched on")
    func deleteEnded() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            let id = try #require(try await client.createMeeting(token).body["id"]?.intValue)
            _ = try await client.call(.put, "/v2/meetings/\(id)/status", bearer: token, json: ["action": "end"])
            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "refuse_delete_ended"])
            let refused = try await client.call(.delete, "/v2/meetings/\(id)", bearer: token)
            #expect(refused.status == 400 && refused.code == 3007)
            #expect(refused.body["message"] == "Sorry, you cannot delete this meeting since it has ended.")
            #expect(
                try await client.call(.get, "/_sim/faults").body["faults"]?.arrayValue?.contains {
                    $0["kind"] == "refuse_delete_ended"
                } == true
            )
            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "refuse_delete_ended", "enabled": false])
            #expect(try await client.call(.delete, "/v2/meetings/\(id)", bearer: token).status == 204)
        }
    }

    @Test("a per-second 429 may carry Retry-After as a time")
    func retryAfterAsTime() async throws {
        let harness = Harness()
        try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            _ = try await client.call(
                .post,
                "/_sim/faults",
                json: ["kind": "status", "status": 429, "retry_after": "2030-01-01T00:00:00Z"]
            )
            let reply = try await client.createMeeting(token)
            #expect(reply.status == 429 && reply.headers[.retryAfter] == "2030-01-01T00:00:00Z")
        }
    }

    @Test("configuration: app scopes and the passcode policy")
    func configuration() async throws {
        try await withTemporaryDirectory { dir in
            let secret = dir.appendingPathComponent("app.secret")
            try "s3cret\n".write(to: secret, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: secret.path)
            let config = dir.appendingPathComponent("sim.yaml")
            try """
            apps:
              - { client_id: abc, client_secret_file: app.secret, account_id: A1, scopes: [meeting:read:admin] }
            passcode_policy: { min_length: 8, require_special: true }
            """.write(to: config, atomically: true, encoding: .utf8)
            let loaded = try SimConfiguration.load(path: config.path)
            #expect(loaded.apps.first?.scopes == ["meeting:read:admin"])
            #expect(loaded.passcodePolicy == .init(minLength: 8, requireSpecial: true))
            #expect(loaded.passcodePolicy.violation("abcdefgh")?.contains("a special character") == true)
            #expect(loaded.passcodePolicy.violation("abcd-fgh") == nil)
        }
    }
}
