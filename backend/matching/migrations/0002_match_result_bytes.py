"""The size of each stored result (`Match.result_bytes`) and an index in eviction order.

Results stored before this migration are measured here, from the JSON text the
database holds, so that the size budget counts them too.
"""

from django.db import migrations, models
from django.db.models import F, Func, TextField
from django.db.models.functions import Cast, Length


def measure_results(apps, schema_editor):
    Match = apps.get_model("matching", "Match")
    text = Cast(F("result"), output_field=TextField())
    if schema_editor.connection.vendor == "postgresql":
        size = Func(text, function="octet_length", output_field=models.BigIntegerField())
    else:
        # Django writes JSON with non-ASCII characters escaped: characters are bytes.
        size = Length(text)
    Match.objects.using(schema_editor.connection.alias).filter(status="done").update(
        result_bytes=size
    )


class Migration(migrations.Migration):
    dependencies = [
        ("matching", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="match",
            name="result_bytes",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddIndex(
            model_name="match",
            index=models.Index(fields=["status", "last_used_at"], name="match_status_last_used"),
        ),
        migrations.RunPython(measure_results, migrations.RunPython.noop, elidable=True),
    ]
