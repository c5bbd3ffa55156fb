//! The example `config.json` written by `ringfence spec`.

/// Hostname used when `config.json` has no (or an empty) `hostname`, and the
/// one written by [`default_spec_json`].
pub const DEFAULT_HOSTNAME: &str = "ringfence";

/// The `ociVersion` written by [`default_spec_json`] (the same as
/// `runc spec` and oci-spec's default).
pub const DEFAULT_OCI_VERSION: &str = "1.0.2-dev";

/// The example spec, in `runc spec`'s layout (Go struct order, tab indents).
///
/// Kept as text so the key order matches runc's, whatever serde_json
/// features the workspace turns on. Tests check it against the constants.
const DEFAULT_SPEC: &str = r#"{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": false,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			"sh"
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "ringfence",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": [
				"nosuid",
				"strictatime",
				"mode=755",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": [
				"nosuid",
				"noexec",
				"newinstance",
				"ptmxmode=0666",
				"mode=0620",
				"gid=5"
			]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"mode=1777",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": [
				"nosuid",
				"noexec",
				"nodev"
			]
		},
		{
			"destination": "/sys",
			"type": "sysfs",
			"source": "sysfs",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"relatime",
				"ro"
			]
		}
	],
	"linux": {
		"resources": {
			"devices": [
				{
					"allow": false,
					"access": "rwm"
				}
			]
		},
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "network"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			}
		],
		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi",
			"/sys/devices/virtual/tpm"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
}
"#;

/// An example `config.json`, like `runc spec` writes: pretty JSON with
/// `ociVersion` [`DEFAULT_OCI_VERSION`], root user, `args: ["sh"]`, the
/// usual `PATH`/`TERM` environment, cwd `/`, runc's three default
/// capabilities, `RLIMIT_NOFILE` 1024/1024, `noNewPrivileges`,
/// `root: {"path": "rootfs", "readonly": true}`, hostname
/// [`DEFAULT_HOSTNAME`], runc's mounts, the pid/network/ipc/uts/mount
/// namespaces and runc's masked and read-only paths.
///
/// Differences from `runc spec`:
/// - `process.terminal` is **false** (runc writes `true`), so that
///   `ringfence run` works out of the box without a console socket or a TTY.
///   Set it to `true` for an interactive shell.
/// - `hostname` is `"ringfence"` instead of `"runc"`.
/// - No cgroup namespace is listed (runc adds one on cgroup v2 hosts only);
///   the sandbox's cgroups are the sentry's, not the host's.
///
/// [`crate::parse_config`] accepts it when a `rootfs` directory sits beside
/// the `config.json`.
pub fn default_spec_json() -> String {
    DEFAULT_SPEC.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestDir;
    use crate::{parse_config, RlimitResource};

    #[test]
    fn is_valid_json_with_runc_layout() {
        let text = default_spec_json();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["ociVersion"], DEFAULT_OCI_VERSION);
        assert_eq!(value["hostname"], DEFAULT_HOSTNAME);
        assert_eq!(value["process"]["terminal"], false);
        assert_eq!(value["root"]["path"], "rootfs");
        assert_eq!(value["mounts"].as_array().map(Vec::len), Some(7));
        // runc's key order: ociVersion, process, root, hostname, mounts, linux.
        let pos = |k: &str| text.find(&format!("\n\t\"{k}\"")).unwrap();
        let keys = [
            "ociVersion",
            "process",
            "root",
            "hostname",
            "mounts",
            "linux",
        ];
        assert!(keys.windows(2).all(|w| pos(w[0]) < pos(w[1])));
        // oci-spec's own parser accepts every field.
        let spec: oci_spec::runtime::Spec = serde_json::from_str(&text).unwrap();
        assert_eq!(spec.version(), DEFAULT_OCI_VERSION);
    }

    #[test]
    fn round_trips_through_parse_config() {
        let dir = TestDir::new();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let spec = parse_config(&default_spec_json(), dir.path()).unwrap();
        assert_eq!(spec.args, ["sh"]);
        assert_eq!(
            spec.env,
            [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ]
        );
        assert_eq!(spec.cwd, "/");
        assert_eq!(spec.hostname, DEFAULT_HOSTNAME);
        assert_eq!((spec.uid, spec.gid), (0, 0));
        assert!(spec.additional_gids.is_empty());
        assert_eq!(spec.rlimits.len(), 1);
        assert_eq!(spec.rlimits[0].resource, RlimitResource::Nofile);
        assert_eq!((spec.rlimits[0].soft, spec.rlimits[0].hard), (1024, 1024));
        assert_eq!(spec.root, dir.path().join("rootfs").canonicalize().unwrap());
        assert!(spec.root_readonly);
        assert!(!spec.terminal);
        assert_eq!(spec.memory_limit_bytes, None);
        assert_eq!(spec.cpu_limit, None);
        assert_eq!(spec.mounts.len(), 7);
        assert_eq!(spec.mounts[0].destination, "/proc");
        assert_eq!(spec.mounts[0].typ.as_deref(), Some("proc"));
        assert!(spec.mounts[0].options.is_empty());
        assert_eq!(
            spec.mounts[6].options.last().map(String::as_str),
            Some("ro")
        );
        assert!(spec.annotations.is_empty());
    }

    #[test]
    fn without_rootfs_is_rejected() {
        let dir = TestDir::new();
        let err = parse_config(&default_spec_json(), dir.path()).unwrap_err();
        assert!(err.to_string().contains("root.path"), "{err}");
    }
}
