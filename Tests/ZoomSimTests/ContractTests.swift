import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ZoomSim

/// Checks zoom-sim's answers against the schemas sitroom is checked against, docs/zoom-api/meetings-openapi.json
/// (derived from Zoom's OpenAPI export; docs/zoom-api/README.md), with Python's `openapi-schema-validator`
/// (`scripts/install-deps` installs it). Runs from a fresh clone: nothing outside the repository is needed.
@Suite("OpenAPI contract")
struct ContractTests {
    static let specPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/zoom-api/meetings-openapi.json").path

    static func runPython(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Validates each `(method, path, status, body)` against the response schema of that operation; an error answer
    /// against the schema of Zoom's error bodies, its status one the operation documents (or 401/429, which Zoom's
    /// rate-limit and authentication pages document for every call), and its code one the operation's text names
    /// unless the case cites where else Zoom documents it (`code_source`).
    static let script = #"""
        import json, sys
        from openapi_schema_validator import OAS30Validator, oas30_format_checker
        spec = json.load(open(sys.argv[1]))
        failures = 0
        for item in json.load(open(sys.argv[2])):
            op = spec["paths"][item["path"]][item["method"]]
            where = "%s %s %s" % (item["method"].upper(), item["path"], item["status"])
            if item.get("error"):
                schema = spec["components"]["schemas"]["Error"]
                documented = op["responses"].get(item["status"])
                if documented is None and item["status"] not in ("401", "429"):
                    failures += 1
                    print("%s: status not documented for this operation" % where)
                code = "`%d`" % item["body"]["code"]
                if documented is not None and not item.get("code_source") and code not in documented["description"]:
                    failures += 1
                    print("%s: code %s not documented for this status" % (where, code))
            else:
                schema = op["responses"][item["status"]]["content"]["application/json"]["schema"]
            validator = OAS30Validator(schema, format_checker=oas30_format_checker)
            errors = sorted(validator.iter_errors(item["body"]), key=lambda e: list(e.path))
            for e in errors:
                failures += 1
                print("%s: %s at %s" % (where, e.message, list(e.path)))
            # Every field the simulator sends must be a field Zoom documents.
            props = schema.get("properties", {})
            for key in item["body"]:
                if props and key not in props and key not in item.get("allow_extra", []):
                    failures += 1
                    print("%s %s: undocumented field %s" % (item["method"].upper(), item["path"], key))
        print("%d contract failures" % failures)
        sys.exit(1 if failures else 0)
        """#

    @Test("zoom-sim's answers have the shapes Zoom documents")
    func answersMatchZoomSchemas() async throws {
        let validator = try Self.runPython(["-c", "import openapi_schema_validator"])
        try #require(
            validator.status == 0,
            "openapi-schema-validator is missing (scripts/install-deps): \(validator.output)"
        )
        let harness = Harness()
        let cases: [JSON] = try await harness.app.test(.router) { client in
            let token = try await client.s2sToken()
            let created = try await client.createMeeting(token)
            let id = try #require(created.body["id"]?.intValue)
            _ = try await client.createMeeting(token)
            let got = try await client.call(.get, "/v2/meetings/\(id)", bearer: token)
            let list = try await client.call(.get, "/v2/users/u1abc/meetings?page_size=1", bearer: token)
            let user = try await client.call(.get, "/v2/users/u1abc", bearer: token)
            let users = try await client.call(.get, "/v2/users", bearer: token)
            #expect(created.status == 201 && got.status == 200 && list.status == 200)
            #expect(user.status == 200 && users.status == 200)

            // Error answers, each turned on as a test would.
            let tooLong = try await client.call(
                .post,
                "/v2/users/u1abc/meetings",
                bearer: token,
                json: [
                    "topic": .string(String(repeating: "t", count: 201)), "type": 2,
                    "start_time": "2026-01-01T10:00:00Z",
                ]
            )
            let stranger = try await client.call(
                .post,
                "/v2/users/u1abc/meetings",
                bearer: token,
                json: [
                    "topic": "t", "type": 2, "start_time": "2026-01-01T10:00:00Z",
                    "settings": ["alternative_hosts": "nobody@example.com"],
                ]
            )
            _ = try await client.call(.put, "/v2/meetings/\(id)/status", bearer: token, json: ["action": "end"])
            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "refuse_delete_ended"])
            let ended = try await client.call(.delete, "/v2/meetings/\(id)", bearer: token)
            _ = try await client.call(
                .post,
                "/_sim/faults",
                json: ["kind": "daily_limit", "user": "u1abc", "answer": "300"]
            )
            let daily300 = try await client.createMeeting(token)
            _ = try await client.call(.post, "/_sim/faults", json: ["kind": "daily_limit", "user": "u1abc"])
            let daily429 = try await client.createMeeting(token)
            _ = try await client.call(
                .post,
                "/_sim/faults",
                json: ["kind": "scopes", "client_id": "abc123", "scopes": ["meeting:read:admin"]]
            )
            let narrow = try await client.s2sToken()
            let scope = try await client.createMeeting(narrow, user: "bridge-2@example.com")
            #expect(tooLong.code == 300 && stranger.code == 300 && ended.code == 3007)
            #expect(daily300.code == 300 && daily429.status == 429 && scope.code == 4711)
            return [
                [
                    "method": "post", "path": "/users/{userId}/meetings", "status": "201", "body": created.body,
                    // Documented on Zoom's current reference page but not in this older export.
                    "allow_extra": ["uuid", "host_id", "status", "pstn_password", "encrypted_password"],
                ],
                [
                    "method": "get", "path": "/meetings/{meetingId}", "status": "200", "body": got.body,
                    "allow_extra": ["pstn_password"],
                ],
                ["method": "get", "path": "/users/{userId}/meetings", "status": "200", "body": list.body],
                [
                    "method": "get", "path": "/users/{userId}", "status": "200", "body": user.body,
                    "allow_extra": ["display_name"],
                ],
                ["method": "get", "path": "/users", "status": "200", "body": users.body],
                // A refused field: 300 "Validation Failed." with `errors[]`; the export lists 300 under both 300 and
                // 400, the error definitions page gives the body.
                [
                    "method": "post", "path": "/users/{userId}/meetings", "status": "400", "body": tooLong.body,
                    "error": true,
                ],
                [
                    "method": "post", "path": "/users/{userId}/meetings", "status": "400", "body": stranger.body,
                    "error": true,
                ],
                [
                    "method": "delete", "path": "/meetings/{meetingId}", "status": "400", "body": ended.body,
                    "error": true,
                ],
                [
                    "method": "post", "path": "/users/{userId}/meetings", "status": "400", "body": daily300.body,
                    "error": true,
                ],
                [
                    "method": "post", "path": "/users/{userId}/meetings", "status": "429", "body": daily429.body,
                    "error": true,
                ],
                [
                    "method": "post", "path": "/users/{userId}/meetings", "status": "400", "body": scope.body,
                    "error": true,
                    "code_source":
                        "developers.zoom.us/docs/integrations/oauth-error-messages/ and Zoom's forum on granular scopes",
                ],
            ]
        }
        try await withTemporaryDirectory { dir in
            let casesFile = dir.appendingPathComponent("cases.json")
            try JSON.array(cases).serialized().write(to: casesFile, atomically: true, encoding: .utf8)
            let script = dir.appendingPathComponent("validate.py")
            try Self.script.write(to: script, atomically: true, encoding: .utf8)
            let result = try Self.runPython([script.path, Self.specPath, casesFile.path])
            #expect(result.status == 0, "\(result.output)")
        }
    }
}
