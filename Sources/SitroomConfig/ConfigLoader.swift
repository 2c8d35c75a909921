import SitroomCore

/// Reads, decodes and validates one generation of `etc/` (SPEC §3).
public enum ConfigLoader {
    /// Reads, decodes and validates all of `etcDirectory`: `sitroom.yaml`, `integrations/*.yaml` (the name is the
    /// file name without `.yaml`; only `*.yaml` files, dotfiles and editor backups ignored), `roster.yaml`
    /// (optional) and `templates/*.mustache` (optional). Secret files are checked (existence, type, mode 0600
    /// or stricter) but never read.
    ///
    /// Every file is read even after an error, so one run reports all problems (like `nginx -t`).
    ///
    /// - Parameter etcDirectory: the `etc/` directory; relative paths are taken from the current directory.
    /// - Returns: the configuration, with documented defaults for keys not given; all paths in it are absolute.
    /// - Throws: ``ConfigErrors`` listing every problem as `file:line:col: message`, in file order.
    /// - Complexity: O(total size of the files).
    public static func load(etcDirectory: String) throws(ConfigErrors) -> Configuration {
        let etc = FileReading.absolute(etcDirectory)
        var reports: [Diagnostics] = []

        // integrations/ first: sitroom.yaml refers to their names.
        var integrations: [String: IntegrationConfig] = [:]
        var integrationReports: [Diagnostics] = []
        var integrationNames: Set<String> = []
        var sites = ConfigSites()
        let integrationsDirectory = etc + "/integrations"
        for (name, path) in entries(of: integrationsDirectory, suffix: ".yaml", reports: &integrationReports) {
            integrationNames.insert(name)
            let diag = Diagnostics(file: path)
            integrationReports.append(diag)
            let root = compose(path, diag: diag)
            if let config = IntegrationFile.read(name: name, file: path, root: root, diag: diag, sites: &sites) {
                integrations[name] = config
            }
        }

        let daemonPath = etc + "/sitroom.yaml"
        let daemonDiag = Diagnostics(file: daemonPath)
        reports.append(daemonDiag)
        let daemon = DaemonFile.read(
            file: daemonPath,
            root: compose(daemonPath, diag: daemonDiag),
            integrations: integrationNames,
            diag: daemonDiag,
            sites: &sites
        )
        reports.append(contentsOf: integrationReports)

        let rosterPath = etc + "/roster.yaml"
        var roster = Roster()
        if FileReading.kind(of: rosterPath) != .missing {
            let diag = Diagnostics(file: rosterPath)
            reports.append(diag)
            roster = RosterFile.read(root: compose(rosterPath, diag: diag), diag: diag) ?? Roster()
        }

        var templates: [String: String] = [:]
        var templateReports: [Diagnostics] = []
        for (name, path) in entries(of: etc + "/templates", suffix: ".mustache", reports: &templateReports) {
            let diag = Diagnostics(file: path)
            templateReports.append(diag)
            if let text = TemplateFile.read(name: name, path: path, diag: diag) { templates[name] = text }
        }
        reports.append(contentsOf: templateReports)

        let errors = reports.flatMap(\.errors)
        guard errors.isEmpty else { throw ConfigErrors(errors: errors) }
        guard let daemon else {
            // Unreachable: DaemonFile returns nil only after reporting. Refuse rather than guess.
            throw ConfigErrors(errors: [
                ConfigError(file: daemonPath, line: 0, column: 0, message: "internal error: settings not read")
            ])
        }
        var configuration = Configuration(
            etcDirectory: etc,
            daemon: daemon,
            integrations: integrations,
            roster: roster,
            templates: templates
        )
        configuration.warnings = warnings(configuration, sites: sites, daemonFile: daemonPath)
        return configuration
    }

    /// What is valid but probably not meant (never an error):
    /// - an integration file that `conference.integrations` (when given) and no rule names: no room goes through
    ///   it unless an incident event names it;
    /// - the same Zoom user (same `api_url`, user compared without case) in the pools of two integrations: each
    ///   pool counts only its own meetings, so together they may exceed the user's `concurrent_meetings` and
    ///   Zoom's daily create limit.
    /// - Returns: the warnings, by file and position.
    static func warnings(_ configuration: Configuration, sites: ConfigSites, daemonFile: String) -> [ConfigWarning] {
        var warnings: [ConfigWarning] = []
        let conference = configuration.daemon.conference
        if let listed = sites.conferenceIntegrations {
            let named = Set(conference.integrations + conference.rules.flatMap(\.integrations))
            for integration in configuration.integrations.values.sorted(by: { $0.name < $1.name })
            where !named.contains(integration.name) {
                warnings.append(
                    ConfigWarning(
                        file: integration.file,
                        line: 1,
                        column: 1,
                        message: "integration \(integration.name) is not named in conference.integrations "
                            + "(\(daemonFile):\(listed.line):\(listed.column)) nor in a rule: no room uses it "
                            + "unless an incident event names it; add it to the list, or remove the file"
                    )
                )
            }
        }
        var seen: [String: (integration: IntegrationConfig, position: Position)] = [:]
        for integration in configuration.integrations.values.sorted(by: { $0.name < $1.name }) {
            let users = sites.hostUsers[integration.name] ?? [:]
            for host in integration.hosts {
                let user = host.user.lowercased()
                let position = users[user] ?? .unknown
                let key = integration.apiURL + "\u{0}" + user
                guard let first = seen[key] else {
                    seen[key] = (integration, position)
                    continue
                }
                warnings.append(
                    ConfigWarning(
                        file: integration.file,
                        line: position.line,
                        column: position.column,
                        message:
                            "hosts: Zoom user \(host.user) is also a host of integration \(first.integration.name) "
                            + "(\(first.integration.file):\(first.position.line):\(first.position.column)); each pool "
                            + "counts only its own meetings, so together they may exceed its concurrent_meetings and "
                            + "Zoom's daily create limit"
                    )
                )
            }
        }
        return warnings
    }

    /// Reads and validates `etc/intake.yaml` (sitroom-intake's settings, SPEC §11) and, for each Zoom route, the
    /// integration file it names (`etc/integrations/NAME.yaml`, for its `webhook_secret_file`). Nothing else of
    /// `etc/` is read, so a problem elsewhere does not stop the intake. Secret files are checked (existence, type,
    /// mode 0600 or stricter) but never read.
    ///
    /// - Parameters:
    ///   - etcDirectory: the `etc/` directory; relative paths are taken from the current directory.
    ///   - spoolMaxFileSize: sitroom.yaml's `spool.max_file_size` when the caller knows it (`sitroomd
    ///     --check-config`): a larger `max_body_size` is an error, since sitroomd would reject such files.
    /// - Returns: the settings, with documented defaults for keys not given; all paths in it are absolute.
    /// - Throws: ``ConfigErrors`` listing every problem as `file:line:col: message` (a missing file too).
    public static func loadIntake(
        etcDirectory: String,
        spoolMaxFileSize: Int? = nil
    ) throws(ConfigErrors)
        -> IntakeConfiguration
    {
        let etc = FileReading.absolute(etcDirectory)
        let path = etc + "/" + intakeFileName
        let diag = Diagnostics(file: path)
        var reports = [diag]
        var looked: [String: IntakeFile.IntegrationLookup] = [:]
        let configuration = IntakeFile.read(
            file: path,
            root: compose(path, diag: diag),
            integrations: { name in
                if let known = looked[name] { return known }
                let file = etc + "/integrations/" + name + ".yaml"
                let result: IntakeFile.IntegrationLookup
                if !IntegrationFile.isIdentifier(name) || FileReading.kind(of: file) != .regular {
                    result = .missing
                } else {
                    let integrationDiag = Diagnostics(file: file)
                    reports.append(integrationDiag)
                    var sites = ConfigSites()  // warnings are the daemon's to give
                    let config = IntegrationFile.read(
                        name: name,
                        file: file,
                        root: compose(file, diag: integrationDiag),
                        diag: integrationDiag,
                        sites: &sites
                    )
                    result = config.map { .found($0) } ?? .invalid
                }
                looked[name] = result
                return result
            },
            spoolMaxFileSize: spoolMaxFileSize,
            diag: diag
        )
        let errors = reports.flatMap(\.errors)
        guard errors.isEmpty, let configuration else {
            throw ConfigErrors(
                errors: errors.isEmpty
                    ? [ConfigError(file: path, line: 0, column: 0, message: "internal error: settings not read")]
                    : errors
            )
        }
        return configuration
    }

    /// sitroom-intake's settings file in `etc/`.
    public static let intakeFileName = "intake.yaml"

    /// Reads and composes one YAML file, reporting why it cannot be read.
    static func compose(_ path: String, diag: Diagnostics) -> YAMLDocument.Result {
        do {
            let bytes = try FileReading.read(path)
            return YAMLDocument.compose(bytes, diag: diag)
        } catch {
            diag.report(error.message, at: .unknown)
            return .failed
        }
    }

    /// Whether a directory entry is ignored: dotfiles (also Kubernetes' `..data`), editor backups and swap
    /// files (`x~`, `#x#`, `x.swp`, `x.swx`, `x.bak`, `x.orig`, `x.dpkg-*`, `x.rpm*`).
    static func isIgnored(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix("~") || name.hasPrefix("#") || name.hasSuffix(".swp")
            || name.hasSuffix(".swx") || name.hasSuffix(".bak") || name.hasSuffix(".orig")
            || name.contains(".dpkg-") || name.contains(".rpmnew") || name.contains(".rpmsave")
    }

    /// The `(name without suffix, absolute path)` of the files ending in `suffix` in `directory`, by name.
    /// A missing directory has none; an entry that is not a regular file is reported.
    private static func entries(
        of directory: String,
        suffix: String,
        reports: inout [Diagnostics]
    ) -> [(String, String)] {
        switch FileReading.kind(of: directory) {
        case .missing: return []
        case .directory: break
        case .regular, .other:
            let diag = Diagnostics(file: directory)
            diag.report("not a directory", at: .unknown)
            reports.append(diag)
            return []
        }
        guard let names = FileReading.list(directory) else {
            let diag = Diagnostics(file: directory)
            diag.report("cannot list the directory", at: .unknown)
            reports.append(diag)
            return []
        }
        var result: [(String, String)] = []
        for name in names where !isIgnored(name) && name.hasSuffix(suffix) && name.count > suffix.count {
            let path = directory + "/" + name
            guard FileReading.kind(of: path) == .regular else {
                let diag = Diagnostics(file: path)
                diag.report("not a regular file", at: .unknown)
                reports.append(diag)
                continue
            }
            result.append((String(name.dropLast(suffix.count)), path))
        }
        return result
    }
}

/// `etc/roster.yaml`: `teams: { NAME: [ {name, email?, phone?, role?} ] }`.
enum RosterFile {
    static func read(root: YAMLDocument.Result, diag: Diagnostics) -> Roster? {
        let top: YAMLMapping
        switch root {
        case .failed: return nil
        case .empty: return Roster()
        case .node(let node):
            guard let mapping = YAMLValue(node: node, path: "", diag: diag).mapping() else { return nil }
            top = mapping
        }
        let before = diag.count
        var teams: [String: [Participant]] = [:]
        let teamsMapping = top.mapping("teams")
        for (key, value) in teamsMapping.freeEntries() {
            guard let team = key.string() else { continue }
            guard let items = value.list() else { continue }
            var members: [Participant] = []
            var seen: [String: Int] = [:]
            for item in items {
                guard let entry = item.mapping() else { continue }
                let contact = Contacts.read(entry, roles: true)
                entry.finish()
                guard let contact else { continue }
                let person = Participant(
                    name: contact.name,
                    email: contact.email,
                    phone: contact.phone,
                    role: contact.role
                )
                if let line = seen[person.personID] {
                    item.fail("the same person as the member at line \(line)")
                    continue
                }
                seen[person.personID] = item.position.line
                members.append(person)
            }
            teams[team] = members
        }
        teamsMapping.finish()
        top.finish()
        return diag.count == before ? Roster(teams: teams) : nil
    }
}

/// `etc/templates/<kind>.<channel>.mustache`.
enum TemplateFile {
    static func read(name: String, path: String, diag: Diagnostics) -> String? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, TemplateRules.kinds.contains(parts[0]), TemplateRules.channels.contains(parts[1]) else {
            diag.report(
                "template file must be named <kind>.<channel>.mustache with kind one of "
                    + TemplateRules.kinds.joined(separator: ", ") + " and channel one of "
                    + TemplateRules.channels.joined(separator: ", "),
                at: .unknown
            )
            return nil
        }
        let bytes: [UInt8]
        do {
            bytes = try FileReading.read(path)
        } catch {
            diag.report(error.message, at: .unknown)
            return nil
        }
        if let bad = YAMLDocument.firstInvalidUTF8(bytes) {
            diag.report(
                "invalid UTF-8 (byte 0x\(String(bytes[bad], radix: 16)))",
                at: YAMLDocument.position(ofByte: bad, in: bytes)
            )
            return nil
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let before = diag.count
        if parts[1] == "email" { checkEmailLayout(text, diag: diag) }
        TemplateCheck.check(text, diag: diag)
        return diag.count == before ? text : nil
    }

    /// An email template is `Subject: ...`, a blank line, then the body.
    private static func checkEmailLayout(_ text: String, diag: Diagnostics) {
        // Lines end at LF or CR LF ("\r\n" is one Character in Swift: splitting at "\n" alone would not split it).
        let lines = text.split(maxSplits: 2, omittingEmptySubsequences: false, whereSeparator: \.isLineEnd).map {
            $0.hasSuffix("\r") ? $0.dropLast() : $0
        }
        guard let first = lines.first, first.hasPrefix("Subject:"),
            !first.dropFirst("Subject:".count).trimmingCharacters().isEmpty
        else {
            diag.report("an email template must begin with a 'Subject: ...' line", at: .start)
            return
        }
        guard lines.count >= 2, lines[1].allSatisfy({ $0 == " " || $0 == "\t" }) else {
            diag.report(
                "the Subject line must be followed by a blank line, then the body",
                at: Position(line: 2, column: 1)
            )
            return
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters() -> String { String(self).trimmingWhitespace() }
}
