package httpfront

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
)

// decodeObject unmarshals a JSON object body into v, answering malformed
// JSON, non-object bodies and wrong types with a 400 naming the field.
func decodeObject(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return hermes.InvalidParam("", "Request body is empty; expected a JSON object")
	}
	if trimmed[0] != '{' {
		return hermes.InvalidParam("", "Request body must be a JSON object")
	}
	if !utf8.Valid(trimmed) {
		// JSON is UTF-8 (RFC 8259); guessing what broken bytes meant
		// would put words in the user's mouth.
		return hermes.InvalidParam("", "Request body is not valid UTF-8")
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = te.Struct
			}
			return hermes.InvalidParam(field, "Invalid type for '%s': expected %s, got %s", field, te.Type.String(), te.Value)
		}
		var pe *paramError
		if errors.As(err, &pe) {
			return hermes.InvalidParam(pe.param, "%s", pe.msg)
		}
		return hermes.InvalidParam("", "Malformed JSON in request body: %s", cleanJSONError(err))
	}
	return nil
}

// paramError is returned by custom unmarshalers to name the field at fault.
type paramError struct{ param, msg string }

func (e *paramError) Error() string { return e.param + ": " + e.msg }

func cleanJSONError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "json: ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// wireContent is message content: a string, null, or an array of parts.
type wireContent struct {
	Text  string
	Parts []hermes.Part
}

func (c *wireContent) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		return nil
	case b[0] == '"':
		return json.Unmarshal(b, &c.Text)
	case b[0] == '[':
		var parts []struct {
			Type     string          `json:"type"`
			Text     string          `json:"text"`
			ImageURL json.RawMessage `json:"image_url"`
			Detail   string          `json:"detail"` // input_image's
			// File is a chat file part's body; a Responses input_file
			// has the same fields flat (an input_image's file_id too).
			File *filePart `json:"file"`
			filePart
		}
		if err := json.Unmarshal(b, &parts); err != nil {
			return &paramError{"content", "content parts must be objects with a type"}
		}
		var text strings.Builder
		hasFile := false
		for _, p := range parts {
			switch p.Type {
			case "text", "input_text", "output_text":
				text.WriteString(p.Text)
				c.Parts = append(c.Parts, hermes.Part{Type: "text", Text: p.Text})
			case "image_url", "input_image":
				url, detail := imageURL(p.ImageURL)
				if detail == "" {
					detail = p.Detail
				}
				if url != "" || p.FileID != "" {
					c.Parts = append(c.Parts, hermes.Part{Type: "image_url", ImageURL: url, Detail: detail, FileID: p.FileID})
				}
			case "file", "input_file":
				w := &p.filePart
				if p.Type == "file" {
					if p.File == nil {
						return &paramError{"content", "a file part needs a 'file' object with file_data or file_id"}
					}
					w = p.File
				}
				f, err := w.input()
				if err != nil {
					return err
				}
				c.Parts = append(c.Parts, hermes.Part{Type: "file", File: f})
				hasFile = true
			}
		}
		c.Text = text.String()
		if len(c.Parts) > 0 && !hasImage(c.Parts) && !hasFile {
			c.Parts = nil // plain text needs no parts
		}
		return nil
	}
	return &paramError{"content", "content must be a string or an array of content parts"}
}

// filePart is a file sent in a message: chat's {"type":"file","file":{…}}
// or the Responses API's {"type":"input_file",…}.
type filePart struct {
	Filename string `json:"filename"`
	FileData string `json:"file_data"`
	FileURL  string `json:"file_url"`
	FileID   string `json:"file_id"`
}

// input checks that exactly one source is given and decodes file_data: a
// base64 data URL (as the OpenAI SDKs send it) or bare base64.
func (w *filePart) input() (*hermes.FileInput, error) {
	n := 0
	for _, v := range []string{w.FileData, w.FileURL, w.FileID} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return nil, &paramError{"content", "a file part needs exactly one of file_data, file_url or file_id"}
	}
	f := &hermes.FileInput{URL: w.FileURL, ID: w.FileID}
	if w.Filename != "" {
		f.Filename = CleanFilename(w.Filename)
	}
	if w.FileData == "" {
		return f, nil
	}
	payload := w.FileData
	if rest, ok := strings.CutPrefix(payload, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		media, isB64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isB64 {
			return nil, &paramError{"content", "file_data must be base64: a data URL (data:<type>;base64,…) or bare base64"}
		}
		f.MediaType, payload = media, data
	}
	b, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(payload); err != nil {
			return nil, &paramError{"content", "file_data is not valid base64"}
		}
	}
	f.Data = b
	return f, nil
}

// imageURL reads an image_url: a string (Responses input_image) or
// {"url", "detail"} (chat completions).
func imageURL(raw json.RawMessage) (url, detail string) {
	if len(raw) == 0 {
		return "", ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, ""
	}
	var obj struct {
		URL    string `json:"url"`
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(raw, &obj)
	return obj.URL, obj.Detail
}

func hasImage(parts []hermes.Part) bool {
	for _, p := range parts {
		if p.Type == "image_url" {
			return true
		}
	}
	return false
}

// wireTool is a function tool in chat completions' nested shape or the
// Responses API's flat shape.
type wireTool struct {
	Type     string `json:"type"`
	Function *struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
}

func (t wireTool) spec() (hermes.ToolSpec, bool) {
	if t.Type != "" && t.Type != "function" {
		return hermes.ToolSpec{}, false
	}
	if t.Function != nil {
		return hermes.ToolSpec{Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters}, t.Function.Name != ""
	}
	return hermes.ToolSpec{Name: t.Name, Description: t.Description, Parameters: t.Parameters}, t.Name != ""
}

func toolSpecs(tools []wireTool) ([]hermes.ToolSpec, error) {
	var out []hermes.ToolSpec
	for i, t := range tools {
		s, ok := t.spec()
		if !ok {
			if t.Type != "" && t.Type != "function" {
				continue // hosted tools (web_search_preview…) are the agent's job here
			}
			return nil, hermes.InvalidParam("tools", "tools[%d] needs a function name", i)
		}
		out = append(out, s)
	}
	return out, nil
}

// toolChoice reads "auto" | "none" | "required" | {"type":"function","function":{"name"}} | {"type":"function","name"}.
func toolChoice(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "auto", "none", "required":
			return s, nil
		}
		return "", hermes.InvalidParam("tool_choice", "tool_choice must be auto, none, required or a function")
	}
	var obj struct {
		Type     string `json:"type"`
		Name     string `json:"name"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", hermes.InvalidParam("tool_choice", "tool_choice must be a string or an object")
	}
	if obj.Function.Name != "" {
		return obj.Function.Name, nil
	}
	if obj.Name != "" {
		return obj.Name, nil
	}
	return "auto", nil
}

// stripMarkers removes the inline tool-progress lines hermesd itself wrote
// into earlier answers, so a model never learns to print fake ones.
func stripMarkers(s string) string {
	if !strings.Contains(s, "\n`") && !strings.HasPrefix(s, "`") {
		return s
	}
	lines := strings.Split(s, "\n")
	out := lines[:0]
	for _, l := range lines {
		if isMarker(l) {
			continue
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

var markerEmojis = []string{"💻", "📖", "✍️", "🔧", "🔎", "🔍", "📄", "🧠", "📚", "📋", "⚡"}

func isMarker(line string) bool {
	if len(line) < 4 || line[0] != '`' || line[len(line)-1] != '`' {
		return false
	}
	inner := line[1 : len(line)-1]
	for _, e := range markerEmojis {
		if strings.HasPrefix(inner, e+" ") {
			return true
		}
	}
	return false
}

// marker is the inline progress line for a tool event.
func marker(t *hermes.ToolEvent) string {
	label := strings.ReplaceAll(t.Label, "\n", " ")
	label = strings.ReplaceAll(label, "`", "'")
	return "\n`" + t.Emoji + " " + label + "`\n"
}
