package web_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
)

// TestServeRegistersWebhooks: a serving process with --public-url
// registers an export's webhook on its audience when the export is saved
// (the emulator validates the URL with a GET first, as Mailchimp does); a
// person who unsubscribes in "Mailchimp" shows as unsubscribed on the
// profile within seconds, without another run; deleting the export removes
// the webhook.
func TestServeRegistersWebhooks(t *testing.T) {
	mc := emulatortest.Start(t, emulator.Options{WebhookRetryDelay: 10 * time.Millisecond})
	listID, err := mc.CreateList(mc.Key(), "Newsletter")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	base := startServe(t, "--listen", "127.0.0.1:"+port, "--public-url", "http://127.0.0.1:"+port)
	admin := signInHTTP(t, base, adminEmail, adminPassword)
	call := func(method, path, ct, body string) string {
		t.Helper()
		status, out := admin.api(t, method, base+path, ct, body)
		if status >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, status, out)
		}
		return out
	}
	call("POST", "/api/v1/connections", "application/json", `{"display_name":"Main","type":"mailchimp","api_key":"`+mc.Key()+`","api_base_url":"`+mc.URL+`","privacy_consent":true}`)
	call("POST", "/api/v1/profiles/import", "text/csv", "customer_id,email,tier\nc1,ann@shop.io,gold\nc2,bob@shop.io,gold\n")
	call("POST", "/api/v1/segments", "application/json", `{"name":"Gold","rule":{"attribute":"tier","op":"eq","value":"gold"}}`)
	call("POST", "/api/v1/exports", "application/json", `{"name":"Gold","connection_id":1,"audience_id":"`+listID+`","segment_ids":[1],"mapping":{"email":"email"},"schedule":"off"}`)

	hooks, err := mc.Webhooks(listID)
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks) != 1 || !strings.HasPrefix(hooks[0].URL, "http://127.0.0.1:"+port+"/hooks/mailchimp/1.") {
		t.Fatalf("after saving the export the audience has webhooks %+v", hooks)
	}

	var run struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal([]byte(call("POST", "/api/v1/exports/1/runs", "application/json", `{}`)), &run); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the run to succeed", func() bool {
		var r struct{ Status string }
		_ = json.Unmarshal([]byte(call("GET", "/api/v1/runs/"+strconv.FormatInt(run.ID, 10), "", "")), &r)
		return r.Status == "succeeded"
	})
	if err := mc.Unsubscribe(listID, "ann@shop.io"); err != nil {
		t.Fatal(err)
	}
	statusAttr := "mailchimp." + listID + ".status"
	waitUntil(t, 10*time.Second, "the unsubscribe to reach the profile", func() bool {
		var p struct {
			Attributes map[string]any `json:"attributes"`
		}
		_ = json.Unmarshal([]byte(call("GET", "/api/v1/profiles/c1", "", "")), &p)
		return p.Attributes[statusAttr] == "unsubscribed"
	})

	call("DELETE", "/api/v1/exports/1", "", "")
	if hooks, _ := mc.Webhooks(listID); len(hooks) != 0 {
		t.Fatalf("after deleting the export the audience has webhooks %+v", hooks)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}
