from django.contrib import admin

from .models import Corpus, LanguageModel, Upload


@admin.register(Corpus)
class CorpusAdmin(admin.ModelAdmin[Corpus]):
    list_display = ["name", "project", "tokenization", "length", "documents", "created_at"]
    search_fields = ["name", "project__slug"]
    readonly_fields = [
        "id",
        "path",
        "length",
        "vocab_size",
        "documents",
        "size_bytes",
        "created_at",
    ]


@admin.register(LanguageModel)
class LanguageModelAdmin(admin.ModelAdmin[LanguageModel]):
    list_display = ["name", "project", "rnn_type", "layers", "hidden_size", "origin", "created_at"]
    list_filter = ["origin", "rnn_type"]
    search_fields = ["name", "project__slug"]
    readonly_fields = [f.name for f in LanguageModel._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False  # models are uploaded or trained through the API, which checks them


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin[Upload]):
    list_display = ["original_name", "kind", "project", "created_by", "size", "created_at"]
    readonly_fields = [f.name for f in Upload._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False
