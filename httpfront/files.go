package httpfront

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fasthttp/router"
	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

// FileStore keeps the files uploaded through the Files API
// (persistence.Files).
type FileStore interface {
	// Receive takes at most limit bytes of r for rec.ID and sets
	// rec.Bytes; commit stores them under rec as it then is, discard drops
	// them.
	Receive(rec *hermes.File, r io.Reader, limit int64) (commit func() error, discard func(), err error)
	File(id string) (*hermes.File, error)
	Open(id string) (io.ReadCloser, *hermes.File, error)
	List() []hermes.File
	Delete(id string) error
}

// filePurposes are the purposes OpenAI's Files API accepts. hermesd reads
// any of them into a turn that names the file; the purpose is kept and
// echoed, so a client's own bookkeeping by purpose works.
var filePurposes = map[string]bool{"assistants": true, "batch": true, "fine-tune": true, "vision": true,
	"user_data": true, "evals": true}

const uploadPath = "/v1/files"

func (s *Server) fileRoutes(r *router.Router) {
	if s.opts.Files == nil {
		return
	}
	r.POST(uploadPath, s.uploadFile)
	r.GET("/v1/files", s.listFiles)
	r.GET("/v1/files/{id}", s.getFile)
	r.GET("/v1/files/{id}/content", s.fileContent)
	r.DELETE("/v1/files/{id}", s.deleteFile)
}

// isUpload reports whether a request is a file upload, whose body the
// handler streams to disk instead of the middleware reading it into
// memory, under its own limit (API_SERVER_MAX_UPLOAD_BYTES).
func (s *Server) isUpload(h *fasthttp.RequestHeader, path []byte) bool {
	return s.opts.Files != nil && h.IsPost() && string(path) == uploadPath
}

// bodyLimit is the body size a request may have: uploads have theirs,
// everything else API_SERVER_MAX_BODY_BYTES.
func (s *Server) bodyLimit(h *fasthttp.RequestHeader, path []byte) int {
	if s.isUpload(h, path) {
		return s.opts.MaxUploadBytes
	}
	return s.opts.MaxBodyBytes
}

type fileObject struct {
	ID        string  `json:"id"`
	Object    string  `json:"object"`
	Bytes     int64   `json:"bytes"`
	CreatedAt int64   `json:"created_at"`
	Filename  string  `json:"filename"`
	Purpose   string  `json:"purpose"`
	Status    string  `json:"status"` // deprecated by OpenAI, still read by older SDKs
	ExpiresAt *int64  `json:"expires_at"`
	Details   *string `json:"status_details"`
}

func wireFile(f *hermes.File) fileObject {
	return fileObject{ID: f.ID, Object: "file", Bytes: f.Bytes, CreatedAt: f.Created.Unix(), Filename: f.Filename,
		Purpose: f.Purpose, Status: "processed"}
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	b, _ := json.Marshal(v)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(b)
}

// uploadFile takes a multipart upload: a "file" part, streamed to the
// store as it arrives (never held in memory), and a "purpose" field.
// The body was admitted from its headers under the upload limit; a
// chunked body is cut off at that limit while it is read.
func (s *Server) uploadFile(ctx *fasthttp.RequestCtx) {
	boundary := ctx.Request.Header.MultipartFormBoundary()
	if len(boundary) == 0 {
		ctx.SetConnectionClose() // the body is left unread
		writeError(ctx, hermes.InvalidParam("file", "Uploads must be multipart/form-data with a 'file' part and a 'purpose' field"))
		return
	}
	// The stream, never PostBody: that would read the whole upload into memory.
	body := ctx.RequestBodyStream()
	if body == nil {
		body = bytes.NewReader(ctx.Request.Body()) // a request built by hand, its body already read
	}
	limit := int64(s.opts.MaxUploadBytes)
	lr := &limitedBody{r: body, left: limit}
	up, err := s.readUpload(multipart.NewReader(lr, string(boundary)), lr)
	if up.discard != nil {
		defer up.discard()
	}
	if err == nil && up.purpose == "" {
		err = hermes.InvalidParam("purpose", "Missing required parameter: 'purpose'")
	} else if err == nil && !filePurposes[up.purpose] {
		err = hermes.InvalidParam("purpose", "Invalid value for 'purpose': '%s'; expected one of assistants, batch, fine-tune, vision, user_data, evals", clipText(up.purpose, 64))
	} else if err == nil && up.rec == nil {
		err = hermes.InvalidParam("file", "Missing required parameter: 'file'")
	}
	if err == nil {
		up.rec.Purpose = up.purpose
		err = up.commit()
	}
	if err != nil {
		ctx.SetConnectionClose() // what is left of the body must not be read as a request
		writeError(ctx, err)
		return
	}
	rec := up.rec
	writeJSON(ctx, wireFile(rec))
}

// upload is what readUpload found: the file received (not yet stored)
// and the purpose.
type upload struct {
	rec     *hermes.File
	commit  func() error
	discard func()
	purpose string
}

// readUpload reads the parts of an upload. The file's bytes go to the
// store as they arrive, but are stored only once the whole body has been
// read and found right (its purpose may come after it).
func (s *Server) readUpload(mr *multipart.Reader, lr *limitedBody) (up upload, err error) {
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return up, nil
		}
		if err != nil {
			return up, uploadError(err, lr)
		}
		switch p.FormName() {
		case "purpose":
			b, err := io.ReadAll(io.LimitReader(p, 65))
			if err != nil {
				return up, uploadError(err, lr)
			}
			up.purpose = strings.TrimSpace(string(b))
		case "file":
			if up.rec != nil {
				return up, hermes.InvalidParam("file", "Only one file may be uploaded at a time")
			}
			f := &hermes.File{ID: s.opts.NewID("file-"), Created: s.opts.Now(), Filename: CleanFilename(p.FileName())}
			commit, discard, err := s.opts.Files.Receive(f, p, lr.left)
			if err != nil {
				return up, uploadError(err, lr)
			}
			up.rec, up.commit, up.discard = f, commit, discard
		default:
			// Fields OpenAI added later (expires_after…) are not kept; their
			// bytes count against the limit all the same.
			if _, err := io.Copy(io.Discard, p); err != nil {
				return up, uploadError(err, lr)
			}
		}
	}
}

// uploadError names what went wrong reading an upload: the body limit, a
// body that ended early, or a malformed multipart body.
func uploadError(err error, lr *limitedBody) error {
	var he *hermes.Error
	switch {
	case lr.over:
		return hermes.Errorf(hermes.ETooLarge, "Request body exceeds the upload limit of %d bytes", lr.limit())
	case errors.As(err, &he):
		return he
	case errors.Is(err, io.ErrUnexpectedEOF):
		return hermes.InvalidParam("file", "The upload ended before its multipart body did")
	}
	return hermes.InvalidParam("file", "Malformed multipart body: %s", clipText(err.Error(), 200))
}

// limitedBody reads at most left bytes of a body and then fails, so a
// chunked upload (whose size no header declares) stops at the limit.
type limitedBody struct {
	r    io.Reader
	left int64
	read int64
	over bool
}

var errUploadTooLarge = errors.New("upload over the limit")

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a body over the limit from one that ends
		// exactly at it.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
			return 0, errUploadTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	l.read += int64(n)
	return n, err
}

func (l *limitedBody) limit() int64 { return l.left + l.read }

func (s *Server) fileID(ctx *fasthttp.RequestCtx) string {
	id, _ := ctx.UserValue("id").(string)
	return id
}

func (s *Server) getFile(ctx *fasthttp.RequestCtx) {
	f, err := s.opts.Files.File(s.fileID(ctx))
	if err != nil {
		writeError(ctx, err)
		return
	}
	writeJSON(ctx, wireFile(f))
}

// fileContent answers a file's bytes as an attachment of no particular
// type, so a browser never renders an uploaded page in this origin.
func (s *Server) fileContent(ctx *fasthttp.RequestCtx) {
	r, f, err := s.opts.Files.Open(s.fileID(ctx))
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetContentType("application/octet-stream")
	ctx.Response.Header.Set("Content-Disposition", "attachment")
	ctx.SetBodyStream(r, int(f.Bytes)) // closed by fasthttp once sent
}

func (s *Server) deleteFile(ctx *fasthttp.RequestCtx) {
	id := s.fileID(ctx)
	if err := s.opts.Files.Delete(id); err != nil {
		writeError(ctx, err)
		return
	}
	writeJSON(ctx, struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Deleted bool   `json:"deleted"`
	}{id, "file", true})
}

// listFiles answers the files, newest first, filtered by purpose, as a
// cursor page (limit, order, after) as OpenAI's list does.
func (s *Server) listFiles(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	limit := 10000
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > 10000 {
			writeError(ctx, hermes.InvalidParam("limit", "limit must be an integer from 1 to 10000"))
			return
		}
		limit = n
	}
	all := s.opts.Files.List()
	switch string(args.Peek("order")) {
	case "", "desc":
	case "asc":
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	default:
		writeError(ctx, hermes.InvalidParam("order", "order must be asc or desc"))
		return
	}
	purpose := string(args.Peek("purpose"))
	after := string(args.Peek("after"))
	data := make([]fileObject, 0, min(len(all), limit))
	hasMore, skipping := false, after != ""
	for i := range all {
		f := &all[i]
		if skipping {
			skipping = f.ID != after
			continue
		}
		if purpose != "" && f.Purpose != purpose {
			continue
		}
		if len(data) == limit {
			hasMore = true
			break
		}
		data = append(data, wireFile(f))
	}
	if skipping {
		writeError(ctx, hermes.InvalidParam("after", "no file with id '%s'", clipText(after, 80)))
		return
	}
	list := struct {
		Object  string       `json:"object"`
		Data    []fileObject `json:"data"`
		FirstID *string      `json:"first_id"`
		LastID  *string      `json:"last_id"`
		HasMore bool         `json:"has_more"`
	}{Object: "list", Data: data, HasMore: hasMore}
	if len(data) > 0 {
		list.FirstID, list.LastID = &data[0].ID, &data[len(data)-1].ID
	}
	writeJSON(ctx, list)
}

// CleanFilename is the name a file is recorded under: the last element of
// what the client sent (after '/' or '\'), without control or format
// characters, at most 255 bytes, "upload" when nothing is left. It is a
// label: nothing stores a file under it.
func CleanFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == ".." {
		return "upload"
	}
	return name
}

// clipText shortens client text before it is echoed in an error.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
