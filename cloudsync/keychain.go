package cloudsync

import (
	"net"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
)

// Keychain gives image pulls from the controller's registry the device's
// credential: HTTP Basic with the device id and a proto.RegistryPassword
// made for each request, so that a long pull never carries a stale one.
// Other registries get authn.Anonymous, which a multi-keychain passes
// over for the next keychain (docker's config file).
//
// controller is the controller's base URL (http(s)://host[:port]);
// identity is read at each lookup, not once, because a device that
// enrols in the background gets its identity after the image store is
// made. It returns nil until then: no credential yet.
func Keychain(controller string, identity func() *Identity) authn.Keychain {
	u, err := url.Parse(controller)
	if err != nil || u.Host == "" {
		return authn.NewMultiKeychain() // answers Anonymous for everything
	}
	return &keychain{host: canonicalHost(u.Scheme, u.Host), scheme: u.Scheme, identity: identity}
}

type keychain struct {
	host, scheme string
	identity     func() *Identity
}

func (k *keychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	if canonicalHost(k.scheme, res.RegistryStr()) != k.host {
		return authn.Anonymous, nil
	}
	id := k.identity()
	if id == nil || id.Key == nil {
		return authn.Anonymous, nil
	}
	return &deviceAuth{id: *id, now: time.Now}, nil
}

// canonicalHost drops the scheme's default port, so that
// "cloud.example:443/fn" and https://cloud.example are one registry.
func canonicalHost(scheme, hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		return host
	}
	return hostport
}

// deviceAuth is a device's registry credential, signed anew for each
// request.
type deviceAuth struct {
	id  Identity
	now func() time.Time
}

func (d *deviceAuth) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: d.id.DeviceID, Password: proto.RegistryPassword(d.id.Key, d.id.DeviceID, d.now())}, nil
}
