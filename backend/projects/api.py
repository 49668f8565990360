"""Projects, members and invitations: `/api/projects/`, `/api/projects/{slug}/`,
`/api/projects/{slug}/members/`, `/api/invitations/`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Invitation, Membership, Project, Role
from .selectors import (
    invitation_for_user,
    invitations_for,
    membership_role,
    project_for_user,
    projects_for_user,
    role_of,
)
from .services import (
    invitation_accept,
    invitation_decline,
    member_add,
    membership_remove,
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
                "corpus": str(s.corpus_id) if s.corpus_id else None,
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


class MemberSerializer(serializers.Serializer[Any]):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)
    invited = serializers.BooleanField(
        help_text="Invited, not yet a member: waiting for the user to accept. Owners see "
        "invitations; one shows the same whether or not its name belongs to anyone."
    )
    created_at = serializers.DateTimeField(help_text="When they joined, or were invited.")


def member_row(m: Membership | Invitation) -> dict[str, Any]:
    if isinstance(m, Invitation):
        return {
            "username": m.username,
            "role": m.role,
            "invited": True,
            "created_at": m.created_at,
        }
    return {
        "username": m.user.username,
        "role": m.role,
        "invited": False,
        "created_at": m.created_at,
    }


class MemberWriteSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


class MemberRemoveSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)


class ProjectMembersView(APIView):
    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project, role = project_for_user(request.user, slug)
        rows: list[Membership | Invitation] = list(
            project.memberships.select_related("user").order_by("user__username")
        )
        if role == Role.OWNER:
            rows += list(project.invitations.order_by("username"))
        return Response(MemberSerializer([member_row(m) for m in rows], many=True).data)

    @extend_schema(
        request=MemberWriteSerializer,
        responses={201: MemberSerializer, 202: MemberSerializer},
        description="Add a member, or change a member's role. A user the caller can "
        "already see (a member of a project the caller may read) is added at once (201); "
        "any other name is invited (202), alike whether or not it belongs to anyone, and "
        "joins when that user accepts.",
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug, need=Role.OWNER)
        data = MemberWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        added = member_add(project=project, by=request.user, **data.validated_data)  # type: ignore[arg-type]
        code = (
            status.HTTP_202_ACCEPTED if isinstance(added, Invitation) else status.HTTP_201_CREATED
        )
        return Response(MemberSerializer(member_row(added)).data, status=code)

    @extend_schema(
        request=MemberRemoveSerializer,
        responses={204: None},
        description="Remove a member, or withdraw an invitation.",
    )
    def delete(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug, need=Role.OWNER)
        data = MemberRemoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership_remove(project=project, username=data.validated_data["username"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)  # type: ignore[var-annotated]
    project_name = serializers.CharField(source="project.name", read_only=True)
    invited_by = serializers.SlugRelatedField(  # type: ignore[var-annotated]
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Invitation
        fields = ["id", "project", "project_name", "role", "invited_by", "created_at"]
        read_only_fields = fields


class InvitationListView(APIView):
    @extend_schema(
        responses=InvitationSerializer(many=True),
        description="The caller's invitations to join projects, newest first.",
    )
    def get(self, request: Request) -> Response:
        return Response(InvitationSerializer(invitations_for(request.user), many=True).data)


class InvitationDetailView(APIView):
    @extend_schema(responses={204: None}, description="Decline an invitation.")
    def delete(self, request: Request, invitation_id: str) -> Response:
        invitation_decline(invitation=invitation_for_user(request.user, invitation_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptView(APIView):
    @extend_schema(
        request=None,
        responses={201: ProjectSerializer},
        description="Accept an invitation: the caller joins the project with its role.",
    )
    def post(self, request: Request, invitation_id: str) -> Response:
        invitation = invitation_for_user(request.user, invitation_id)
        membership = invitation_accept(invitation=invitation, user=request.user)  # type: ignore[arg-type]
        return Response(
            ProjectSerializer(membership.project, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )
