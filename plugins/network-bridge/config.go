package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/vertigo-autoscaler/vertigo/plugins/network-bridge/ipam"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

const (
	modeNamespaces = "namespaces"
	modeHost       = "host"
	// maxVNI is the largest 24-bit VXLAN network identifier.
	maxVNI = 1<<24 - 1
)

// configSchema is the plugin's `config {}` block; README.md documents it.
func configSchema() *pb.ConfigSchema {
	return schema.Of(
		schema.String("mode", modeNamespaces,
			`"namespaces": every logical node of this machine is a network namespace, joined to the others by VXLAN over veths (the embedded fleet); "host": the node is this machine, its bridge in the plugin's namespace and its underlay address from SetupNode`,
			modeNamespaces, modeHost),
		schema.String("state_dir", "state/net", "directory of the plugin's state file (addresses, MACs, ports); relative to the plugin's working directory"),
		schema.String("netns_prefix", "vertigo-", "namespaces mode: node N lives in namespace <prefix>N, the underlay in <prefix>underlay"),
		schema.String("client_namespace", "client", `namespaces mode: a namespace <prefix><this> on the overlay holding the subnet's first address, from which clients reach every VM; "" for none`),
		schema.String("subnet", "10.77.0.0/24", "IPv4 subnet of the VMs; its first address is the gateway (the client namespace's)"),
		schema.String("underlay_subnet", "10.254.0.0/24", "namespaces mode: IPv4 subnet of the nodes' VTEP addresses on the underlay"),
		schema.Number("vni", 77, fmt.Sprintf("VXLAN network identifier of the overlay, 1 to %d", maxVNI)),
	)
}

var defaultsJSON = func() []byte {
	b, err := schema.Defaults(configSchema())
	if err != nil {
		panic("network plugin config schema: " + err.Error())
	}
	return b
}()

// rawConfig is SetConfig's JSON, in the types the schema sends.
type rawConfig struct {
	Mode            string  `json:"mode"`
	StateDir        string  `json:"state_dir"`
	NetnsPrefix     string  `json:"netns_prefix"`
	ClientNamespace string  `json:"client_namespace"`
	Subnet          string  `json:"subnet"`
	UnderlaySubnet  string  `json:"underlay_subnet"`
	VNI             float64 `json:"vni"`
}

// config is a checked configuration.
type config struct {
	mode      string
	stateFile string
	prefix    string
	// client is the client namespace's name, "" for none.
	client   string
	subnet   ipam.Pool
	underlay ipam.Pool
	vni      int
}

// nameRE is what the plugin accepts in node names and namespace prefixes:
// safe as a file name under /run/netns and on a command line.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// maxNameLen keeps namespace names short enough to type.
const maxNameLen = 64

// decodeConfig decodes SetConfig's JSON over the defaults and checks it,
// naming every attribute it rejects.
func decodeConfig(configJSON []byte) (config, error) {
	var r rawConfig
	if err := json.Unmarshal(defaultsJSON, &r); err != nil {
		return config{}, fmt.Errorf("network plugin config defaults: %w", err)
	}
	if len(configJSON) > 0 {
		if err := sdk.DecodeConfig(configJSON, &r); err != nil {
			if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
				return config{}, sdk.FieldErrors{{Field: te.Field, Message: fmt.Sprintf("want a %s, got a JSON %s", te.Type, te.Value)}}
			}
			return config{}, err
		}
	}
	var errs sdk.FieldErrors
	reject := func(field, format string, args ...any) {
		errs = append(errs, sdk.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if r.Mode != modeNamespaces && r.Mode != modeHost {
		reject("mode", "must be %q or %q, got %q", modeNamespaces, modeHost, r.Mode)
	}
	if r.StateDir == "" {
		reject("state_dir", "must not be empty")
	}
	if r.NetnsPrefix != "" && (!nameRE.MatchString(r.NetnsPrefix) || len(r.NetnsPrefix) > maxNameLen) {
		reject("netns_prefix", "must be letters, digits, '_', '.' and '-' (at most %d), got %q", maxNameLen, r.NetnsPrefix)
	}
	if r.ClientNamespace != "" && (!nameRE.MatchString(r.ClientNamespace) || len(r.ClientNamespace) > maxNameLen) {
		reject("client_namespace", "must be empty or letters, digits, '_', '.' and '-' (at most %d), got %q", maxNameLen, r.ClientNamespace)
	}
	if r.ClientNamespace == underlayName {
		reject("client_namespace", "%q names the underlay namespace", underlayName)
	}
	subnet, err := ipam.ParsePool(r.Subnet)
	if err != nil {
		reject("subnet", "%v", err)
	}
	underlay, uerr := ipam.ParsePool(r.UnderlaySubnet)
	if uerr != nil {
		reject("underlay_subnet", "%v", uerr)
	}
	if err == nil && uerr == nil && subnet.Prefix().Overlaps(underlay.Prefix()) {
		reject("underlay_subnet", "%s overlaps subnet %s", underlay.Prefix(), subnet.Prefix())
	}
	if v := r.VNI; v != float64(int(v)) || v < 1 || v > maxVNI {
		reject("vni", "must be a whole number from 1 to %d, got %g", maxVNI, v)
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b sdk.FieldError) int { return strings.Compare(a.Field, b.Field) })
		return config{}, errs
	}
	dir, err := filepath.Abs(r.StateDir)
	if err != nil {
		return config{}, sdk.FieldErrors{{Field: "state_dir", Message: err.Error()}}
	}
	c := config{
		mode:      r.Mode,
		stateFile: filepath.Join(dir, "state.json"),
		prefix:    r.NetnsPrefix,
		subnet:    subnet.Reserve(subnet.First()),
		underlay:  underlay,
		vni:       int(r.VNI),
	}
	if r.ClientNamespace != "" && c.mode == modeNamespaces {
		c.client = c.prefix + r.ClientNamespace
	}
	return c, nil
}

// checkNode refuses node names that are unsafe or that would collide with
// the plugin's own namespaces.
func (c config) checkNode(node string) error {
	if !nameRE.MatchString(node) || len(node) > maxNameLen {
		return fmt.Errorf("node: must be letters, digits, '_', '.' and '-' (at most %d), got %q", maxNameLen, node)
	}
	if c.mode == modeNamespaces && (node == underlayName || c.prefix+node == c.client) {
		return fmt.Errorf("node: %q names one of the plugin's own namespaces", node)
	}
	return nil
}
