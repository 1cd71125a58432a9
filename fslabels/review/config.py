"""The Label Studio labelling interface of a framesel review project, and the names in it.

One task is one (video, question) row. The reviewer sees the question (and options / answer),
a browser-playable clip with a timeline for marking relevant time ranges, the pseudo-label score
curve (fused, spatial, temporal over the candidates), the candidate frames as a gallery with a
per-frame choice, an accept/reject verdict on the pseudo-labels and a comment.

The names below are what import reads back, so export and import share them.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

__all__ = [
    "COMMENT",
    "CURVE",
    "FRAMES",
    "FRAME_CHOICE",
    "IRRELEVANT",
    "RANGES",
    "RELEVANT",
    "SHEET",
    "TASK_KEY",
    "VERDICT",
    "VERDICTS",
    "VIDEO",
    "label_config",
]

VIDEO = "video"  # <Video>: the clip
RANGES = "ranges"  # <TimelineLabels> on the clip: relevant time ranges
CURVE = "curve"  # <TimeSeries>: the score curve over candidate positions
FRAMES = "frames"  # <Image valueList>: the candidate frames
SHEET = "sheet"  # <Image>: all candidates in one contact sheet
FRAME_CHOICE = "frame"  # per-frame <Choices perItem>: relevant / not relevant
VERDICT = "verdict"  # <Choices>: accept / reject the pseudo-labels
COMMENT = "comment"  # <TextArea>
RELEVANT = "relevant"
IRRELEVANT = "not relevant"
VERDICTS = ("accept", "reject")
# The key of the framesel block in a task's data: tasks without it did not come from framesel.
TASK_KEY = "framesel"


def label_config(title: str = "framesel review") -> str:
    """The labelling config XML (accepted and rendered by Label Studio 1.23).

    Args:
        title: the header shown above each task.

    Returns:
        The ``<View>`` XML for the project's ``label_config``.
    """
    return f"""<View>
  <Header value={quoteattr(title)} size="5"/>
  <Header value="$question"/>
  <Text name="context" value="$context"/>
  <Video name="{VIDEO}" value="$video" frameRate="$fps" height="240"/>
  <TimelineLabels name="{RANGES}" toName="{VIDEO}">
    <Label value="{RELEVANT}" background="#2e7d32"/>
  </TimelineLabels>
  <Header value="Pseudo-label scores per candidate frame (fused, spatial, temporal)" size="6"/>
  <TimeSeries name="{CURVE}" valueType="json" value="$scores" timeColumn="candidate">
    <Channel column="fused" legend="fused" strokeColor="#1f77b4"/>
    <Channel column="spatial" legend="spatial" strokeColor="#ff7f0e"/>
    <Channel column="temporal" legend="temporal" strokeColor="#2ca02c"/>
  </TimeSeries>
  <Header value="Candidate frames: mark the ones that help answer the question" size="6"/>
  <Image name="{SHEET}" value="$sheet"/>
  <Header value="One at a time (page through them): mark relevant or not relevant" size="6"/>
  <Image name="{FRAMES}" valueList="$frames"/>
  <Choices name="{FRAME_CHOICE}" toName="{FRAMES}" perItem="true" choice="single" showInline="true">
    <Choice value="{RELEVANT}"/>
    <Choice value="{IRRELEVANT}"/>
  </Choices>
  <Header value="Are the pseudo-labels right?" size="6"/>
  <Choices name="{VERDICT}" toName="{VIDEO}" choice="single" showInline="true">
    <Choice value="{VERDICTS[0]}"/>
    <Choice value="{VERDICTS[1]}"/>
  </Choices>
  <TextArea name="{COMMENT}" toName="{VIDEO}" placeholder="Comment (optional)" rows="2" maxSubmissions="1"/>
</View>
"""
