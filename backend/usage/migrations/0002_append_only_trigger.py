"""On PostgreSQL the database itself refuses UPDATE and DELETE on usage events."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION usage_event_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'usage events are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER usage_event_append_only
  BEFORE UPDATE OR DELETE ON usage_usageevent
  FOR EACH ROW EXECUTE FUNCTION usage_event_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS usage_event_append_only ON usage_usageevent;
DROP FUNCTION IF EXISTS usage_event_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
