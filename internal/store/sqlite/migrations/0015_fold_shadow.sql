-- The folded shadow of a profile's attributes (attrjson.FoldShadow): for
-- each string attribute whose value has a character outside ASCII, the
-- value as package textfold folds it; NULL when there is none. Segment
-- rules read it for text that ASCII lowering cannot fold (package
-- segment, compile.go), instead of folding every row's text. Every write
-- of attrs writes it (sqldb: the layer merger). The UPDATE fills it for
-- the profiles stored before.
ALTER TABLE profiles ADD COLUMN attrs_fold TEXT;
UPDATE profiles SET attrs_fold = NULLIF((SELECT json_group_object(key, segsync_fold(value)) FROM json_each(profiles.attrs)
    WHERE type = 'text' AND length(CAST(value AS BLOB)) <> length(value)), '{}')
WHERE length(CAST(attrs AS BLOB)) <> length(attrs);
