"""Running as the `[server] user`: look it up, take the data directory over, drop root.

`mailboat serve` started as root binds its listeners (ports below 1024 need root), reads its
secret keys, hands everything under the data directory to the user (`take_over`), then becomes
that user for good (`drop`): supplementary groups, group, user, in that order, and it checks that
root cannot be had back. Every worker is forked after that, so none of them runs as root.
Maildirs and queue files then belong to one unprivileged user, the one Dovecot's `mail_uid` names.

The other commands run as root against the same data directory (`mailboat user add`, `queue`,
`sendmail`) act as that user with `act_as`: only the effective ids change, so every file they
create belongs to it, whatever the file (no list of paths to chown afterwards), while the real
uid stays the caller's (`sendmail` still names root as the sender).
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import stat
from collections.abc import Collection
from dataclasses import dataclass


class PrivilegeError(Exception):
    """The user cannot be found or become: one line, naming the fix."""


@dataclass(frozen=True)
class Identity:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups (its primary group among them)

    @property
    def label(self) -> str:
        try:
            group = grp.getgrgid(self.gid).gr_name
        except KeyError:
            group = str(self.gid)
        return f"{self.name}:{group}"


def lookup(name: str) -> Identity:
    """The account `name` (a user name or a numeric uid) in the passwd database."""
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        raise PrivilegeError(f"no such user {name!r}: create it (useradd --system {name}) "
                             "or name an existing one") from None
    try:
        groups = tuple(sorted(set(os.getgrouplist(entry.pw_name, entry.pw_gid))))
    except OSError:
        groups = (entry.pw_gid,)
    return Identity(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


def target(name: str) -> Identity | None:
    """The identity this process must become for `[server] user = name`, or None when there is
    nothing to do (no user set, root named, or already running as that user). Not root and
    not that user: PrivilegeError."""
    if not name:
        return None
    who = lookup(name)
    if os.geteuid() == 0:
        return who if who.uid != 0 else None
    if os.geteuid() == who.uid:
        return None
    try:
        me = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        me = f"uid {os.geteuid()}"
    raise PrivilegeError(f"server.user is {who.name!r}, but mailboat runs as {me!r}, not root: "
                         f"start it as root or as {who.name}")


def take_over(top: str, who: Identity, skip: Collection[str] = ()) -> int:
    """Give `top` and everything under it to `who` (user and primary group); return how many
    entries changed hands. Symbolic links are changed themselves, never followed (a link left
    in the tree cannot make root chown a file elsewhere); directories are walked through file
    descriptors opened with O_NOFOLLOW. `skip`: names directly under `top` not walked."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        changed = 0
        info = os.fstat(fd)
        if (info.st_uid, info.st_gid) != (who.uid, who.gid):
            _chown(lambda: os.fchown(fd, who.uid, who.gid), top)
            changed += 1
        return changed + _take_over_dir(fd, top, who, skip)
    finally:
        os.close(fd)


def _take_over_dir(dir_fd: int, where: str, who: Identity, skip: Collection[str]) -> int:
    changed = 0
    with os.scandir(dir_fd) as listing:
        entries = [(e.name, e.stat(follow_symlinks=False)) for e in listing if e.name not in skip]
    for name, info in entries:
        path = os.path.join(where, name)
        if (info.st_uid, info.st_gid) != (who.uid, who.gid):
            _chown(functools.partial(os.chown, name, who.uid, who.gid, dir_fd=dir_fd, follow_symlinks=False), path)
            changed += 1
        if stat.S_ISDIR(info.st_mode):
            try:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except FileNotFoundError:
                continue  # gone meanwhile
            try:
                changed += _take_over_dir(sub, path, who, ())
            finally:
                os.close(sub)
    return changed


def _chown(change, path: str) -> None:
    try:
        change()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise PrivilegeError(f"cannot give {path} to the server user: {exc.strerror or exc}") from None


def own_log_file(path: str, who: Identity) -> None:
    """A log file mailboat made as root (or is about to make) becomes the user's, so every
    worker can open it again after the fork; a file owned by someone else is left alone."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
    except OSError as exc:
        raise PrivilegeError(f"log.file: cannot open {path}: {exc.strerror or exc}") from None
    try:
        if os.fstat(fd).st_uid == 0:
            _chown(lambda: os.fchown(fd, who.uid, who.gid), path)
    finally:
        os.close(fd)


def drop(who: Identity) -> None:
    """Become `who` for good: supplementary groups, then group, then user. Raises
    PrivilegeError when any step fails or root can still be had back."""
    try:
        os.setgroups(list(who.groups))
        os.setgid(who.gid)
        os.setuid(who.uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot become {who.label}: {exc.strerror or exc}") from None
    if os.getresuid() != (who.uid,) * 3 or os.getresgid() != (who.gid,) * 3:
        raise PrivilegeError(f"cannot become {who.label}: still uids {os.getresuid()}, gids {os.getresgid()}")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise PrivilegeError(f"dropped to {who.label} but root could be had back: refusing to go on")


def act_as(who: Identity) -> None:
    """Create files as `who` from now on: the effective ids change, the real ones stay."""
    try:
        os.setgroups(list(who.groups))
        os.setegid(who.gid)
        os.seteuid(who.uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot act as {who.label}: {exc.strerror or exc}") from None


def check_reachable(path: str, who: Identity) -> None:
    """After the change: `path` (the data directory) and Python's own library must be usable by
    this process (a module imported later, on first use, would fail far from here)."""
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK, effective_ids=True):
        raise PrivilegeError(f"{path} is not usable by {who.label}: a parent directory is closed to it "
                             "(chmod o+x the parents, or move data_dir, e.g. to /var/lib/mailboat)")
    library = os.path.dirname(os.__file__)
    if not os.access(library, os.R_OK | os.X_OK, effective_ids=True):
        raise PrivilegeError(f"Python's library {library} is closed to {who.label}: install Python and "
                             "mailboat where that user can read them (e.g. /usr or a venv under /opt)")
