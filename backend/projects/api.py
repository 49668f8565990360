"""Projects and members: `/api/projects/`, `/api/projects/{slug}/`, `/api/projects/{slug}/members/`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Membership, Project, Role
from .selectors import membership_role, project_for_user, projects_for_user, role_of
from .services import (
    membership_remove,
    membership_set,
    project_create,
    project_delete,
    project_update,
)


class ProjectSerializer(serializers.ModelSerializer[Project]):
    role = serializers.SerializerMethodField(
        help_text="The caller's role; viewer on a public project they are no member of."
    )
    member = serializers.SerializerMethodField(help_text="Whether the caller is a member.")

    class Meta:
        model = Project
        fields = ["slug", "name", "description", "public", "role", "member", "created_at"]

    def get_role(self, obj: Project) -> str | None:
        return role_of(self.context["request"].user, obj)

    def get_member(self, obj: Project) -> bool:
        return membership_role(self.context["request"].user, obj) is not None


class ProjectCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=80, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    public = serializers.BooleanField(
        required=False, default=False, help_text="Readable by every signed-in user."
    )


class ProjectUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    public = serializers.BooleanField(
        required=False, help_text="Readable by every signed-in user (owners only)."
    )


class ItemSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    name = serializers.CharField()


class ProjectDetailSerializer(ProjectSerializer):
    """A project with what it holds, read through the reverse relations of the apps
    above this one (state sets, corpora, models), which this app does not import."""

    statesets = serializers.SerializerMethodField()
    corpora = serializers.SerializerMethodField()
    models = serializers.SerializerMethodField()

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "statesets", "corpora", "models"]

    @extend_schema(responses=ItemSerializer(many=True))
    def get_statesets(self, obj: Project) -> list[dict[str, Any]]:
        return [
            {
                "id": str(s.id),
                "name": s.name,
                "length": s.length,
                "origin": s.origin,
                "sources": len(s.manifest.get("sources", [])),
                "created_at": s.created_at.isoformat(),
            }
            for s in obj.statesets.all()
        ]

    @extend_schema(responses=ItemSerializer(many=True))
    def get_corpora(self, obj: Project) -> list[dict[str, Any]]:
        return [
            {
                "id": str(c.id),
                "name": c.name,
                "length": c.length,
                "tokenization": c.tokenization,
                "documents": c.documents,
                "created_at": c.created_at.isoformat(),
            }
            for c in obj.corpora.all()
        ]

    @extend_schema(responses=ItemSerializer(many=True))
    def get_models(self, obj: Project) -> list[dict[str, Any]]:
        return [
            {
                "id": str(m.id),
                "name": m.name,
                "rnn_type": m.rnn_type,
                "layers": m.layers,
                "hidden_size": m.hidden_size,
                "vocab_size": m.vocab_size,
                "spec": m.spec,
                "origin": m.origin,
                "size_bytes": m.size_bytes,
                "created_at": m.created_at.isoformat(),
            }
            for m in obj.language_models.all()
        ]


class ProjectListView(APIView):
    @extend_schema(responses=ProjectSerializer(many=True))
    def get(self, request: Request) -> Response:
        qs = projects_for_user(request.user)
        return Response(ProjectSerializer(qs, many=True, context={"request": request}).data)

    @extend_schema(request=ProjectCreateSerializer, responses={201: ProjectSerializer})
    def post(self, request: Request) -> Response:
        data = ProjectCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = project_create(user=request.user, **data.validated_data)  # type: ignore[arg-type]
        return Response(
            ProjectSerializer(project, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class ProjectDetailView(APIView):
    @extend_schema(responses=ProjectDetailSerializer)
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug)
        return Response(ProjectDetailSerializer(project, context={"request": request}).data)

    @extend_schema(request=ProjectUpdateSerializer, responses=ProjectSerializer)
    def patch(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug, need=Role.EDITOR)
        data = ProjectUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if "public" in data.validated_data:
            project_for_user(request.user, slug, need=Role.OWNER)
        project = project_update(project=project, **data.validated_data)
        return Response(ProjectSerializer(project, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug, need=Role.OWNER)
        project_delete(project=project)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberSerializer(serializers.ModelSerializer[Membership]):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]


class MemberWriteSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


class MemberRemoveSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)


class ProjectMembersView(APIView):
    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug)
        members = project.memberships.select_related("user").order_by("user__username")
        return Response(MemberSerializer(members, many=True).data)

    @extend_schema(request=MemberWriteSerializer, responses={201: MemberSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug, need=Role.OWNER)
        data = MemberWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = membership_set(project=project, **data.validated_data)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MemberRemoveSerializer, responses={204: None})
    def delete(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug, need=Role.OWNER)
        data = MemberRemoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership_remove(project=project, username=data.validated_data["username"])
        return Response(status=status.HTTP_204_NO_CONTENT)
