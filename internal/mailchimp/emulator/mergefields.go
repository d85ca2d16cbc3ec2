package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// maxMergeFields is the number of merge fields an audience may have.
const maxMergeFields = 30

type mergeFieldBody struct {
	Tag          *string       `json:"tag"`
	Name         *string       `json:"name"`
	Type         *string       `json:"type"`
	Required     *bool         `json:"required"`
	DefaultValue *string       `json:"default_value"`
	Public       *bool         `json:"public"`
	DisplayOrder *int          `json:"display_order"`
	Options      *mergeOptions `json:"options"`
	HelpText     *string       `json:"help_text"`
}

func mergeFieldJSON(l *list, f *mergeField) map[string]any {
	opts := map[string]any{}
	switch f.typ {
	case "text":
		opts["size"] = f.options.Size
	case "address":
		opts["default_country"] = f.options.DefaultCountry
	case "phone":
		opts["phone_format"] = f.options.PhoneFormat
	case "date", "birthday":
		opts["date_format"] = f.options.DateFormat
	case "radio", "dropdown":
		opts["choices"] = f.options.Choices
	}
	return map[string]any{
		"merge_id":      f.id,
		"tag":           f.tag,
		"name":          f.name,
		"type":          f.typ,
		"required":      f.required,
		"default_value": f.defaultValue,
		"public":        f.public,
		"display_order": f.displayOrder,
		"options":       opts,
		"help_text":     f.helpText,
		"list_id":       l.id,
		"_links":        []any{},
	}
}

func (l *list) fieldByID(s string) (*mergeField, bool) {
	id, err := strconv.Atoi(s)
	if err != nil {
		return nil, false
	}
	for _, f := range l.fields {
		if !f.deleted && f.id == id {
			return f, true
		}
	}
	return nil, false
}

func (e *Emulator) getMergeFields(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	count, offset, err := pageParams(r)
	if err != nil {
		return nil, err
	}
	typ := r.URL.Query().Get("type")
	l.mu.RLock()
	defer l.mu.RUnlock()
	var all []*mergeField
	for _, f := range l.fields {
		if !f.deleted && (typ == "" || f.typ == typ) {
			all = append(all, f)
		}
	}
	out := []any{}
	for _, f := range pageOf(all, offset, count) {
		out = append(out, mergeFieldJSON(l, f))
	}
	return map[string]any{"merge_fields": out, "list_id": l.id, "total_items": len(all), "_links": []any{}}, nil
}

func (e *Emulator) getMergeField(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	f, ok := l.fieldByID(r.PathValue("merge_id"))
	if !ok {
		return nil, errNotFound()
	}
	return mergeFieldJSON(l, f), nil
}

// checkOptions validates type-specific options.
func checkOptions(typ string, o mergeOptions) *apiError {
	switch typ {
	case "radio", "dropdown":
		if len(o.Choices) == 0 {
			return errField("options.choices", "This value should not be blank.")
		}
	case "phone":
		if o.PhoneFormat != "" && o.PhoneFormat != "US" && o.PhoneFormat != "none" {
			return errField("options.phone_format", "Data did not match any of the schemas described in the options list.")
		}
	case "date":
		if f := strings.ToUpper(o.DateFormat); f != "" && f != "MM/DD/YYYY" && f != "DD/MM/YYYY" {
			return errField("options.date_format", "Data did not match any of the schemas described in the options list.")
		}
	case "birthday":
		if f := strings.ToUpper(o.DateFormat); f != "" && f != "MM/DD" && f != "DD/MM" {
			return errField("options.date_format", "Data did not match any of the schemas described in the options list.")
		}
	}
	return nil
}

func (e *Emulator) postMergeField(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	var b mergeFieldBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if b.Name == nil || strings.TrimSpace(*b.Name) == "" {
		return nil, errField("name", "This value should not be blank.")
	}
	if b.Type == nil || !slices.Contains(mergeTypes, *b.Type) {
		return nil, errField("type", "Data did not match any of the schemas described in the options list.")
	}
	f := &mergeField{name: *b.Name, typ: *b.Type, public: false}
	if b.Options != nil {
		f.options = *b.Options
	}
	if perr := checkOptions(f.typ, f.options); perr != nil {
		return nil, perr
	}
	switch f.typ {
	case "text":
		if f.options.Size == 0 {
			f.options.Size = 25
		}
	case "address":
		if f.options.DefaultCountry == 0 {
			f.options.DefaultCountry = 164
		}
	case "phone":
		if f.options.PhoneFormat == "" {
			f.options.PhoneFormat = "none"
		}
	case "date":
		if f.options.DateFormat == "" {
			f.options.DateFormat = "MM/DD/YYYY"
		}
	case "birthday":
		if f.options.DateFormat == "" {
			f.options.DateFormat = "MM/DD"
		}
	}
	if b.Required != nil {
		f.required = *b.Required
	}
	if b.DefaultValue != nil {
		f.defaultValue = *b.DefaultValue
	}
	if b.Public != nil {
		f.public = *b.Public
	}
	if b.HelpText != nil {
		f.helpText = *b.HelpText
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	live := l.liveFields()
	if len(live) >= maxMergeFields {
		return nil, errInvalid(fmt.Sprintf("This audience already has the maximum of %d merge fields.", maxMergeFields))
	}
	if b.Tag != nil && *b.Tag != "" {
		f.tag = strings.ToUpper(*b.Tag)
		if !tagPattern.MatchString(f.tag) {
			return nil, errField("tag", "Merge tags must be 1-10 characters: letters, digits and underscores, starting with a letter.")
		}
	} else {
		for n := len(l.fields) + 1; ; n++ {
			f.tag = fmt.Sprintf("MMERGE%d", n)
			if _, taken := l.fieldByTag(f.tag); !taken {
				break
			}
		}
	}
	if f.tag == "EMAIL" {
		return nil, errField("tag", "The merge tag EMAIL is reserved.")
	}
	if _, taken := l.fieldByTag(f.tag); taken {
		return nil, errInvalid(fmt.Sprintf("A Merge Field with the tag \"%s\" already exists for this list.", f.tag))
	}
	maxID, maxOrder := 0, 1
	for _, x := range l.fields {
		maxID = max(maxID, x.id)
		if !x.deleted {
			maxOrder = max(maxOrder, x.displayOrder)
		}
	}
	f.id = maxID + 1
	f.displayOrder = maxOrder + 1
	if b.DisplayOrder != nil {
		f.displayOrder = *b.DisplayOrder
	}
	l.fields = append(l.fields, f)
	l.touch()
	return mergeFieldJSON(l, f), nil
}

func (e *Emulator) patchMergeField(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	var b mergeFieldBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fieldByID(r.PathValue("merge_id"))
	if !ok {
		return nil, errNotFound()
	}
	if b.Type != nil && *b.Type != f.typ {
		return nil, errField("type", "The type of an existing merge field cannot be changed.")
	}
	if b.Name != nil {
		if strings.TrimSpace(*b.Name) == "" {
			return nil, errField("name", "This value should not be blank.")
		}
		f.name = *b.Name
	}
	if b.Tag != nil && *b.Tag != f.tag {
		t := strings.ToUpper(*b.Tag)
		if !tagPattern.MatchString(t) || t == "EMAIL" {
			return nil, errField("tag", "Merge tags must be 1-10 characters: letters, digits and underscores, starting with a letter.")
		}
		if _, taken := l.fieldByTag(t); taken {
			return nil, errInvalid(fmt.Sprintf("A Merge Field with the tag \"%s\" already exists for this list.", t))
		}
		f.tag = t
	}
	if b.Options != nil {
		if perr := checkOptions(f.typ, *b.Options); perr != nil {
			return nil, perr
		}
		o := *b.Options
		if o.Size != 0 {
			f.options.Size = o.Size
		}
		if o.DateFormat != "" {
			f.options.DateFormat = o.DateFormat
		}
		if o.PhoneFormat != "" {
			f.options.PhoneFormat = o.PhoneFormat
		}
		if o.DefaultCountry != 0 {
			f.options.DefaultCountry = o.DefaultCountry
		}
		if o.Choices != nil {
			f.options.Choices = o.Choices
		}
	}
	if b.Required != nil {
		f.required = *b.Required
	}
	if b.DefaultValue != nil {
		f.defaultValue = *b.DefaultValue
	}
	if b.Public != nil {
		f.public = *b.Public
	}
	if b.DisplayOrder != nil {
		f.displayOrder = *b.DisplayOrder
	}
	if b.HelpText != nil {
		f.helpText = *b.HelpText
	}
	l.touch()
	return mergeFieldJSON(l, f), nil
}

// deleteMergeField removes the field; its values disappear from every member.
func (e *Emulator) deleteMergeField(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fieldByID(r.PathValue("merge_id"))
	if !ok {
		return nil, errNotFound()
	}
	slot := slices.Index(l.fields, f)
	f.deleted = true
	for i := range l.members {
		if slot < len(l.members[i].merge) {
			l.members[i].merge[slot] = ""
		}
	}
	l.touch()
	return nil, nil
}
