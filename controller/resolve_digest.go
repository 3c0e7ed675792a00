package controller

import (
	"context"
	"fmt"
	"strings"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
)

// ResolveImage, until the registry lands (branch registry): only
// "repo@sha256:..." references, taken as given.
func (s *Server) ResolveImage(ctx context.Context, ref string) (repo, digest string, err error) {
	repo, digest, ok := strings.Cut(ref, "@")
	if !ok || !proto.ValidDigest(digest) {
		return "", "", fmt.Errorf("image %q: want repo@sha256:...: %w", ref, errdefs.ErrInvalid)
	}
	return repo, digest, nil
}
