package httpfront

import (
	"strings"
	"testing"
)

func TestCheckImageURL(t *testing.T) {
	big := "data:image/png;base64," + strings.Repeat("A", (maxImageBytes/3+2)*4)
	fits := "data:image/png;base64," + strings.Repeat("A", maxImageBytes/3*4)
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://example.com/a.png", true},
		{"HTTP://example.com/a.png", true},
		{"data:image/png;base64,AAAA", true},
		{"DATA:IMAGE/JPEG;BASE64,AAAA", true},
		{fits, true},
		{big, false},
		{"https://example.com/" + strings.Repeat("a", 8200), false},
		{"data:image/png,notbase64", false},
		{"data:text/html;base64,PGI+", false},
		{"data:image/svg+xml;base64", false}, // no comma
		{"javascript:alert(1)", false},
		{"file:///etc/passwd", false},
		{"ftp://example.com/a.png", false},
		{"", false},
		{"//example.com/a.png", false},
	} {
		if got := checkImageURL(tt.url) == ""; got != tt.ok {
			t.Errorf("checkImageURL(%.60q) ok = %v, want %v (%s)", tt.url, got, tt.ok, checkImageURL(tt.url))
		}
	}
}
