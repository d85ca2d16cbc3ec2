package emulator_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
)

// A test starts an emulator, sets up an audience with a contact who
// unsubscribed themselves, lets the code under test call the API, and
// inspects the outcome.
func Example() {
	srv, err := emulator.Start(emulator.Options{APIKeys: []string{"0123456789abcdef0123456789abcdef-us9"}})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	list, _ := srv.CreateList(srv.Key(), "Shop")
	_ = srv.Seed(list, emulator.SeedContact{Email: "ann@shop.io", Status: "unsubscribed-self"})

	// The code under test would do this through its Mailchimp client.
	body := `{"members":[{"email_address":"ann@shop.io","status":"subscribed"},{"email_address":"bob@shop.io","status":"subscribed"}],"update_existing":true}`
	req, _ := http.NewRequest("POST", srv.URL+"/lists/"+list, strings.NewReader(body))
	req.SetBasicAuth("anystring", srv.Key())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	ann, _ := srv.Contact(list, "ann@shop.io")
	bob, _ := srv.Contact(list, "bob@shop.io")
	fmt.Println(ann.Status, ann.Compliance)
	fmt.Println(bob.Status)
	fmt.Println(srv.CallCount("POST /lists/{list_id}"), srv.WriteCalls())
	// Output:
	// unsubscribed true
	// subscribed
	// 1 1
}
