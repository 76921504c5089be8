import type { NewBarrage } from './barrage';

type Sample = [time: number, msg: string, color?: string, mode?: NewBarrage['mode']];

// A little history for the demo's videos, so a fresh page has comments flying before anyone posts.
const SAMPLES: Record<number, Sample[]> = {
  100001: [
    [0.5, 'First!'],
    [1.2, 'here we go', '#ffd166'],
    [2.0, 'Welcome to the aurora stream', '#ffffff', 'top'],
    [2.8, 'those colours though', '#f15bb5'],
    [3.6, 'so smooth'],
    [4.1, 'danmaku over websocket, nice', '#00f5d4'],
    [5.5, 'who else is watching at 3am'],
    [6.3, '2333333', '#fee440'],
    [7.0, 'pink phase incoming', '#f15bb5'],
    [8.2, 'this is relaxing'],
    [9.0, 'Halfway there', '#ffd166', 'bottom'],
    [10.4, 'love it', '#ef476f'],
    [11.5, 'lanes never overlap, wow'],
    [12.3, 'hi from the second node', '#9b5de5'],
    [13.8, 'purple!!!', '#c77dff'],
    [15.0, 'orange sunrise', '#ff9f1c'],
    [16.2, 'replay value 100%'],
    [17.5, 'almost over', '#ffffff', 'top'],
    [18.6, 'again again', '#00bbf9'],
    [19.4, 'loop it'],
  ],
  100002: [
    [0.8, 'ocean mode'],
    [2.1, 'so calm', '#90e0ef'],
    [3.5, 'deep blue', '#00b4d8'],
    [5.0, 'Tide is turning', '#ffffff', 'top'],
    [7.2, 'I can hear the waves', '#caf0f8'],
    [9.9, 'best one so far'],
    [12.4, 'blue hour', '#48cae4'],
    [15.1, 'surf is up', '#ffd166'],
    [17.7, 'see you next wave', '#ffffff', 'bottom'],
  ],
  100003: [
    [1.0, 'into the woods', '#95d5b2'],
    [3.0, 'so green'],
    [5.5, 'forest bathing', '#d8f3dc'],
    [8.0, 'Morning mist', '#ffffff', 'top'],
    [11.0, 'leaves everywhere', '#74c69d'],
    [14.5, 'birds?', '#ffd166'],
    [18.0, 'take me back', '#b7e4c7'],
  ],
};

/** The demo's history: a few comments from made-up viewers on each sample video. */
export function sampleComments(): NewBarrage[] {
  return Object.entries(SAMPLES).flatMap(([videoId, samples]) =>
    samples.map(([time, msg, color = '#ffffff', mode = 'scroll'], index) => ({
      uid: 1001 + index,
      video_id: Number(videoId),
      msg,
      time,
      color,
      mode,
    })),
  );
}
