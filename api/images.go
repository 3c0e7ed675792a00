package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// PullRequest is the JSON body of POST /v1/images that pulls an image
// from a registry (an archive upload has a tar body instead).
type PullRequest struct {
	Ref string `json:"ref"` // registry reference: host/repo:tag or host/repo@sha256:...
	// Progress asks for a stream of PullEvent lines (application/x-ndjson)
	// instead of one answer.
	Progress bool `json:"progress,omitempty"`
}

// PullEvent is one line of a pull's progress stream: progress, then either
// the image or an error with the HTTP status the error would have had.
type PullEvent struct {
	Done  int64  `json:"done,omitempty"`  // blob bytes fetched so far
	Total int64  `json:"total,omitempty"` // blob bytes to fetch (those the store lacks)
	Image *Image `json:"image,omitempty"`
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"`
}

// PruneResult answers POST /v1/images/prune.
type PruneResult struct {
	Images []string `json:"images"` // digests removed
	Roots  int      `json:"roots"`  // unpacked roots removed
	Blobs  int      `json:"blobs"`  // blobs removed
	Bytes  int64    `json:"bytes"`  // bytes freed
}

// ImportOptions tune an archive upload.
type ImportOptions struct {
	// Name picks one image by NAME:TAG when the archive holds several for
	// the agent's platform.
	Name string
	// FileName is the archive's file name: bare tags in the archive (what
	// umoci writes) are qualified with it, "hello.tar" and "1.0" making
	// "hello:1.0".
	FileName string
}

// ImportImageWith uploads an image archive (oci-archive or docker-archive
// tar, gzipped or not, or a tar of an OCI layout directory).
func (c *Client) ImportImageWith(ctx context.Context, archive io.Reader, opts ImportOptions) (Image, error) {
	var img Image
	q := url.Values{}
	if opts.Name != "" {
		q.Set("name", opts.Name)
	}
	if opts.FileName != "" {
		q.Set("file", opts.FileName)
	}
	path := "/v1/images"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	err := c.do(ctx, http.MethodPost, path, archive, "application/x-tar", &img)
	return img, err
}

// PullImage has the agent pull ref from its registry. progress, when not
// nil, hears the bytes fetched as the pull goes.
func (c *Client) PullImage(ctx context.Context, ref string, progress func(done, total int64)) (Image, error) {
	if progress == nil {
		var img Image
		err := c.doJSON(ctx, http.MethodPost, "/v1/images", PullRequest{Ref: ref}, &img)
		return img, err
	}
	var img Image
	err := c.stream(ctx, PullRequest{Ref: ref, Progress: true}, func(ev PullEvent) error {
		switch {
		case ev.Error != "":
			return &StatusError{Code: ev.Code, Message: ev.Error}
		case ev.Image != nil:
			img = *ev.Image
		default:
			progress(ev.Done, ev.Total)
		}
		return nil
	})
	if err == nil && img.Digest == "" {
		err = fmt.Errorf("the agent ended the pull without an answer")
	}
	return img, err
}

func (c *Client) stream(ctx context.Context, in PullRequest, fn func(PullEvent) error) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	// No response timeout: a pull over a slow uplink takes what it takes.
	resp, err := c.openStream(ctx, http.MethodPost, "/v1/images", bytes.NewReader(b), "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev PullEvent
		if err := dec.Decode(&ev); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("reading pull progress: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// PruneImages removes what no function uses: images without a name and
// unpacked roots, and with all set every image no function uses.
func (c *Client) PruneImages(ctx context.Context, all bool) (PruneResult, error) {
	var res PruneResult
	path := "/v1/images/prune"
	if all {
		path += "?all=1"
	}
	err := c.doJSON(ctx, http.MethodPost, path, nil, &res)
	return res, err
}
