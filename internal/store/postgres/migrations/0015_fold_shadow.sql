-- The folded shadow of a profile's attributes (attrjson.FoldShadow): for
-- each string attribute whose value has a character outside ASCII, the
-- value as package textfold folds it; NULL when there is none. Segment
-- rules read it for text that ASCII lowering cannot fold (package
-- segment, compile.go), instead of folding every row's text. Every write
-- of attrs writes it (sqldb: the layer merger). The UPDATE fills it for
-- the profiles stored before.
ALTER TABLE profiles ADD COLUMN attrs_fold JSONB;
UPDATE profiles SET attrs_fold = (SELECT jsonb_object_agg(e.key, segsync_fold(e.value #>> '{}')) FROM jsonb_each(profiles.attrs) e
    WHERE jsonb_typeof(e.value) = 'string' AND octet_length(e.value #>> '{}') <> char_length(e.value #>> '{}'))
WHERE octet_length(attrs::text) <> char_length(attrs::text);
