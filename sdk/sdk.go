package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	goplugin "github.com/hashicorp/go-plugin"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// APIVersions are the versions of the Vertigo plugin API this SDK speaks.
// A host and a plugin built from different SDKs agree on the highest
// version both list (see Negotiate).
var APIVersions = []uint32{1}

// Handshake is go-plugin's guard against running a plugin binary by hand or
// under the wrong host. Its protocol version is that of the go-plugin
// transport; the Vertigo API version is negotiated in Base.PluginInfo.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "VERTIGO_PLUGIN",
	MagicCookieValue: "7f1d0c5e-vertigo-plugin",
}

// pluginSetName is the single entry of go-plugin's plugin set: the kind is
// carried by Base.PluginInfo, not by the set.
const pluginSetName = "vertigo"

// Info identifies a plugin.
type Info struct {
	Name        string
	Kind        pb.Kind
	Version     string
	APIVersions []uint32
}

// Base is served by every plugin. Methods take a context so the host can
// bound every call.
type Base interface {
	Info() Info
	// ConfigSchema describes the plugin's `config {}` block. The host
	// decodes the block against it and reports errors at their HCL location.
	ConfigSchema() *pb.ConfigSchema
	// SetConfig receives the decoded block as a JSON object with every
	// attribute present. It may be called again (after a restart, or with a
	// new config) and must be idempotent. Return FieldErrors to reject
	// values so that the host can point at the attribute.
	SetConfig(ctx context.Context, configJSON []byte, apiVersion uint32) error
	Capabilities(ctx context.Context) []string
	Health(ctx context.Context) error
}

// FieldError rejects one attribute's value.
type FieldError struct {
	Field   string
	Message string
}

// FieldErrors is the error SetConfig returns for rejected attributes.
type FieldErrors []FieldError

func (f FieldErrors) Error() string {
	parts := make([]string, len(f))
	for i, e := range f {
		parts[i] = e.Field + ": " + e.Message
	}
	return strings.Join(parts, "; ")
}

// DecodeConfig decodes SetConfig's JSON into v, refusing unknown fields so a
// host/plugin schema mismatch is an error rather than a silently ignored
// setting.
func DecodeConfig(configJSON []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(configJSON)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding plugin config: %w", err)
	}
	return nil
}

// KindName is the word used for a kind in config files and on the command
// line.
func KindName(k pb.Kind) string {
	switch k {
	case pb.Kind_KIND_SCALER:
		return "scaler"
	case pb.Kind_KIND_PLACEMENT:
		return "placement"
	case pb.Kind_KIND_HYPERVISOR:
		return "hypervisor"
	case pb.Kind_KIND_NETWORK:
		return "network"
	}
	return "unspecified"
}

// ParseKind is the inverse of KindName.
func ParseKind(s string) (pb.Kind, error) {
	for _, k := range []pb.Kind{pb.Kind_KIND_SCALER, pb.Kind_KIND_PLACEMENT, pb.Kind_KIND_HYPERVISOR, pb.Kind_KIND_NETWORK} {
		if KindName(k) == s {
			return k, nil
		}
	}
	return pb.Kind_KIND_UNSPECIFIED, fmt.Errorf("unknown plugin kind %q: want one of scaler, placement, hypervisor, network", s)
}

// ErrVersionMismatch is wrapped by Negotiate's error.
var ErrVersionMismatch = errors.New("no common plugin API version")

// Negotiate picks the highest API version both sides speak. When there is
// none, the error says which side is older and so must be upgraded.
func Negotiate(host, plugin []uint32, pluginName string) (uint32, error) {
	if len(plugin) == 0 {
		return 0, fmt.Errorf("%w: plugin %q declares no API versions: upgrade the plugin (host speaks %s)", ErrVersionMismatch, pluginName, versionList(host))
	}
	best := uint32(0)
	for _, h := range host {
		for _, p := range plugin {
			if h == p && h > best {
				best = h
			}
		}
	}
	if best != 0 {
		return best, nil
	}
	hmin, hmax := minMax(host)
	pmin, pmax := minMax(plugin)
	switch {
	case pmax < hmin:
		return 0, fmt.Errorf("%w: plugin %q speaks API %s, host speaks %s: upgrade the plugin", ErrVersionMismatch, pluginName, versionList(plugin), versionList(host))
	case pmin > hmax:
		return 0, fmt.Errorf("%w: plugin %q speaks API %s, host speaks %s: upgrade the host", ErrVersionMismatch, pluginName, versionList(plugin), versionList(host))
	default:
		return 0, fmt.Errorf("%w: plugin %q speaks API %s, host speaks %s: the sets interleave; upgrade whichever is older", ErrVersionMismatch, pluginName, versionList(plugin), versionList(host))
	}
}

func minMax(v []uint32) (uint32, uint32) {
	s := append([]uint32(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[0], s[len(s)-1]
}

func versionList(v []uint32) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("v%d", x)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}
