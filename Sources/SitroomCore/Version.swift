/// sitroom's version, as `status`, `--version`, the metrics' `sitroom_build_info` and the log at start show it.
public let sitroomVersion = "0.1.0"
