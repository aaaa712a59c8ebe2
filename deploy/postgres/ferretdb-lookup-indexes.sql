-- Lookups that scale on FerretDB v1 over PostgreSQL.
--
-- FerretDB v1 answers an equality filter ({"_id": x}, {"sender_code": y}) with
--     SELECT _jsonb FROM <schema>.<table> WHERE _jsonb->'<field>' @> '<value>'
-- but the indexes it creates are btree indexes on (_jsonb -> '<field>'), which cannot serve
-- the @> operator: every lookup, by _id included, scans the whole collection. Measured on the
-- development machine: find_one by _id took 0.7 ms in a collection of 100 documents, 2 ms at
-- 5,000 and 6 ms at 20,000, growing without end as a province's documents, deliveries and
-- applied-event markers accumulate. A GIN index (jsonb_path_ops) on the same expression serves
-- @>: 0.7 ms at 20,000 documents.
--
-- This file makes PostgreSQL add such a GIN "twin" beside every btree index FerretDB creates
-- (on its leading field), through an event trigger, and adds the twins of the indexes that
-- exist already. Run it once per FerretDB database as a superuser (event triggers need one);
-- it is idempotent. deploy/local/infra.sh runs it on every start; see docs/operations.md for
-- a Kubernetes installation. Not needed (and harmless to skip) with MongoDB or with FerretDB
-- on SQLite.

SET client_min_messages = warning;

CREATE OR REPLACE FUNCTION lienthong_gin_twin(index_oid oid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  idx record;
  field text;
BEGIN
  SELECT c.relname AS name, n.nspname AS schema_name, t.relname AS table_name,
         am.amname AS method
    INTO idx
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_am am ON am.oid = c.relam
   WHERE i.indexrelid = index_oid;
  IF NOT FOUND OR idx.method <> 'btree' THEN
    RETURN;  -- a twin itself (gin), or not an index
  END IF;
  field := substring(pg_get_indexdef(index_oid, 1, true)
                     FROM '^\(_jsonb -> ''([^'']+)''::text\)$');
  IF field IS NULL THEN
    RETURN;  -- not a FerretDB field index
  END IF;
  -- one twin per leading field: two unique indexes led by the same field (sender_code, ...)
  -- would otherwise make every insert update two identical GIN indexes
  IF EXISTS (
    SELECT 1
      FROM pg_index other
      JOIN pg_class oc ON oc.oid = other.indexrelid
      JOIN pg_am oam ON oam.oid = oc.relam
     WHERE other.indrelid = (SELECT indrelid FROM pg_index WHERE indexrelid = index_oid)
       AND oam.amname = 'gin'
       AND pg_get_indexdef(other.indexrelid, 1, true)
           = format('(_jsonb -> %L::text)', field)
  ) THEN
    RETURN;
  END IF;
  -- fastupdate off: a lookup never has to scan a pending list of recent inserts (measured with
  -- it on: 1.6 ms instead of 0.7 ms after 20,000 inserts); inserts cost the same here
  EXECUTE format(
    'CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin ((_jsonb -> %L) jsonb_path_ops)'
    ' WITH (fastupdate = off)',
    left(idx.name, 59) || '_gin', idx.schema_name, idx.table_name, field);
  EXECUTE format('ALTER INDEX %I.%I SET (fastupdate = off)',
                 idx.schema_name, left(idx.name, 59) || '_gin');
END
$$;

CREATE OR REPLACE FUNCTION lienthong_gin_twins_on_create() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  command record;
BEGIN
  FOR command IN
    SELECT objid FROM pg_event_trigger_ddl_commands()
     WHERE command_tag = 'CREATE INDEX' AND object_type = 'index'
  LOOP
    PERFORM lienthong_gin_twin(command.objid);
  END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS lienthong_gin_twins;
CREATE EVENT TRIGGER lienthong_gin_twins ON ddl_command_end
  WHEN TAG IN ('CREATE INDEX')
  EXECUTE FUNCTION lienthong_gin_twins_on_create();

-- the indexes FerretDB created before this file was run
SELECT count(lienthong_gin_twin(i.indexrelid)) AS btree_indexes_checked
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_am am ON am.oid = c.relam
 WHERE am.amname = 'btree'
   AND pg_get_indexdef(i.indexrelid, 1, true) LIKE '(_jsonb -> %';
