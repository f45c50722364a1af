-- Who maintained which project, and when (issue #20, item 3: the four-eyes rule).
--
-- `project_maintainers` holds the maintainers of today: leaving deletes the row. The four-eyes
-- rule needs more than that. A maintainer could submit a milestone, invite a co-maintainer,
-- leave the project and then accept their own milestone with a board role or as a backer's
-- admin. So whoever maintained a project at any time may not review its milestones or decide
-- its disputes, and this table remembers them. Rows are added when someone becomes a
-- maintainer and closed (`removed_at`) when they leave; they are never deleted. Someone who
-- leaves and comes back has two rows.
CREATE TABLE project_maintainer_history (
    project_id  TEXT NOT NULL REFERENCES projects (id),
    person_id   TEXT NOT NULL REFERENCES people (id),
    added_at    BIGINT NOT NULL,
    removed_at  BIGINT                         -- NULL while they maintain it
);
CREATE INDEX project_maintainer_history_person ON project_maintainer_history (person_id, project_id);
CREATE INDEX project_maintainer_history_project ON project_maintainer_history (project_id);

-- Filled from what the database already knows. First the maintainers of today.
INSERT INTO project_maintainer_history (project_id, person_id, added_at, removed_at)
SELECT project_id, person_id, added_at, NULL FROM project_maintainers;

-- Then those who left, from the audit trail ('project.maintainer_left', actor 'person:<id>',
-- subject the project); they joined when the trail says they created or joined the project.
INSERT INTO project_maintainer_history (project_id, person_id, added_at, removed_at)
SELECT e.subject, SUBSTR(e.actor, 8),
       COALESCE((SELECT MIN(j.created_at) FROM audit_events j
                 WHERE j.subject = e.subject AND j.actor = e.actor
                   AND j.action IN ('project.created', 'project.maintainer_joined')
                   AND j.created_at <= e.created_at), e.created_at),
       e.created_at
FROM audit_events e
WHERE e.action = 'project.maintainer_left' AND e.actor LIKE 'person:%'
  AND e.subject IN (SELECT id FROM projects)
  AND SUBSTR(e.actor, 8) IN (SELECT id FROM people);

-- Last, anyone the records show acting as a maintainer who is not listed yet (the project's
-- creator, an accepted invitation, a maintainer's agreement to a proposal, a milestone
-- submission): they maintained the project at least at that moment.
INSERT INTO project_maintainer_history (project_id, person_id, added_at, removed_at)
SELECT evidence.project_id, evidence.person_id, MIN(evidence.seen_at), MIN(evidence.seen_at)
FROM (
    SELECT id AS project_id, created_by AS person_id, created_at AS seen_at
    FROM projects WHERE created_by IS NOT NULL
    UNION ALL
    SELECT project_id, accepted_by, accepted_at
    FROM maintainer_invitations WHERE accepted_by IS NOT NULL AND accepted_at IS NOT NULL
    UNION ALL
    SELECT project_id, agreed_by, COALESCE(agreed_at, created_at)
    FROM proposals WHERE agreed_by IS NOT NULL
    UNION ALL
    SELECT pr.project_id, s.submitted_by, s.submitted_at
    FROM milestone_submissions s
    JOIN milestones m ON m.id = s.milestone_id
    JOIN proposals pr ON pr.id = m.proposal_id
    WHERE s.submitted_by IS NOT NULL
) evidence
WHERE evidence.person_id IN (SELECT id FROM people)
  AND NOT EXISTS (SELECT 1 FROM project_maintainer_history h
                  WHERE h.project_id = evidence.project_id AND h.person_id = evidence.person_id)
GROUP BY evidence.project_id, evidence.person_id;
