package syncer

import "github.com/segsync/segsync/internal/mailchimp"

// isEmailExists reports a refused address change whose new address already
// is a contact. TODO(consent-emu merge): mailchimp.IsEmailExists.
func isEmailExists(err error) bool { return mailchimp.IsMemberExists(err) }
