"""On PostgreSQL the database refuses UPDATE and DELETE on research events too, and
lets through one kind of DELETE on either table: retention, which names its limit in
the transaction (`SELECT set_config('statelab.retention_before', <time>, true)`) and
deletes only rows older than it (backend/usage/services.py, `_expire`)."""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION usage_event_append_only() RETURNS trigger AS $$
DECLARE
  retention_before timestamptz;
BEGIN
  IF TG_OP = 'DELETE' THEN
    retention_before := NULLIF(current_setting('statelab.retention_before', true), '')::timestamptz;
    IF retention_before IS NOT NULL AND OLD.at < retention_before THEN
      RETURN OLD;
    END IF;
  END IF;
  RAISE EXCEPTION 'usage events are append-only';
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER = """
CREATE TRIGGER research_event_append_only
  BEFORE UPDATE OR DELETE ON usage_researchevent
  FOR EACH ROW EXECUTE FUNCTION usage_event_append_only();
"""
OLD_FUNCTION = """
CREATE OR REPLACE FUNCTION usage_event_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'usage events are append-only';
END;
$$ LANGUAGE plpgsql;
"""
DROP_TRIGGER = "DROP TRIGGER IF EXISTS research_event_append_only ON usage_researchevent;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)
        schema_editor.execute(TRIGGER)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGER)
        schema_editor.execute(OLD_FUNCTION)


class Migration(migrations.Migration):
    dependencies = [("usage", "0003_research_events_rollups")]
    operations = [migrations.RunPython(forwards, backwards)]
