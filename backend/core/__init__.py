"""The bottom floor of the Django side, shared by every app and importing none of them:
the one error type and its JSON shape (`errors`), query-parameter parsing (`params`),
the JSON renderer (`renderers`), where things live on disk (`storage`), the storage
quota (`quota`, which each app feeds through a registry) and the one generic access
helper every `<noun>_for_user` selector is built on (`access`)."""
