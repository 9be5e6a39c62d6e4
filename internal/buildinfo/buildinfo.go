// Package buildinfo reads what the binary was built from.
package buildinfo

import (
	"cmp"
	"runtime"
	"runtime/debug"
)

// Info is what the binary was built from; a field not recorded is "unknown".
type Info struct {
	Version   string // the main module's version, "(devel)" for a local build
	Commit    string // the VCS revision, with "-dirty" when the tree had changes
	GoVersion string
}

// Read returns the build information of the running binary.
func Read() Info {
	info := Info{Version: "unknown", Commit: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.Version, info.GoVersion = cmp.Or(bi.Main.Version, info.Version), cmp.Or(bi.GoVersion, info.GoVersion)
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && info.Commit != "unknown" {
		info.Commit += "-dirty"
	}
	return info
}
