package uploader

import (
	"testing"
)

// Any answer, however garbled, is classified without a panic; only code
// 1001 is a delivery, and 400/401/403 always park.
func FuzzParseAnswer(f *testing.F) {
	f.Add(200, []byte(`{"code":"1001","message":"成功","seqno":"s1"}`))
	f.Add(200, []byte(`{"code":"400","hint":"order"}`))
	f.Add(502, []byte(`<html>bad gateway</html>`))
	f.Add(200, []byte(`{"code":1001}`))
	f.Add(500, []byte(`{"code":"1500"}`))
	f.Add(200, []byte(``))
	f.Add(200, []byte("{\"code\":\"\xff\xfe\"}"))
	f.Fuzz(func(t *testing.T, status int, raw []byte) {
		resp, err := parseAnswer("/p", status, raw)
		if err == nil && resp.Code != "1001" {
			t.Fatalf("delivered with code %q", resp.Code)
		}
		if err != nil && OutcomeOf(err) == Delivered {
			t.Fatal("an error classified as delivered")
		}
		if c := resp.Code; (c == "400" || c == "401" || c == "403") && OutcomeOf(err) != Rejected {
			t.Fatalf("code %s not parked", c)
		}
	})
}
