-- Text comparison (package textfold): on SQLite segsync_fold is a Go
-- function registered with the driver (package sqlite, functions.go), so
-- this migration only keeps the numbering equal to PostgreSQL's.
SELECT 1;
