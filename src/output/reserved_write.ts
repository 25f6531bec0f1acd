/**
 * Room kept on disk for one file that must be written however full the disk gets (`run.json`'s
 * final record). The room is a hidden temporary file beside the target, filled with real bytes
 * before the run spends anything; the final content is written over those bytes in place (a
 * file system that overwrites in place, as tmpfs and ext4 do, needs no new block for it), cut
 * to length and renamed over the target. The write stays atomic: a crash leaves the old file and
 * a temporary one that the next run removes.
 *
 * @module
 */
import {
  describeWriteError,
  refuseLinks,
  removeQuietly,
  tempPathFor,
  writeAll,
  type WriteOptions,
} from "./atomic_write.ts";

/** File systems allocate whole pages: a room of less would be rounded up anyway. */
const PAGE = 4096;
const CHUNK = 64 * 1024;

/** Bytes kept on disk for a later atomic write of `path`. */
export class Reservation {
  /** The file the room is for. */
  readonly path: string;
  readonly #temp: string;
  readonly #options: WriteOptions;
  #file: Deno.FsFile | undefined;
  #size: number;

  private constructor(
    path: string,
    temp: string,
    file: Deno.FsFile,
    size: number,
    options: WriteOptions,
  ) {
    this.path = path;
    this.#temp = temp;
    this.#file = file;
    this.#size = size;
    this.#options = options;
  }

  /**
   * Allocates at least `bytes` (whole pages) for a later {@linkcode Reservation.commit} to
   * `path`. Throws a fatal `WriteError` when the disk cannot hold them.
   */
  static async create(
    path: string,
    bytes: number,
    options: WriteOptions = {},
  ): Promise<Reservation> {
    await refuseLinks(path, options.within);
    const size = Math.max(1, Math.ceil(bytes / PAGE)) * PAGE;
    const temp = tempPathFor(path);
    let file: Deno.FsFile | undefined;
    try {
      // `createNew` (O_EXCL) never follows a link planted at the temporary name.
      file = await Deno.open(temp, { write: true, createNew: true });
      // Real bytes, not a hole: a sparse file (truncate) would hold no block at all.
      const spaces = new Uint8Array(Math.min(size, CHUNK)).fill(0x20);
      for (let at = 0; at < size; at += spaces.length) {
        await writeAll(file, spaces.subarray(0, Math.min(spaces.length, size - at)));
      }
    } catch (error) {
      file?.close();
      await removeQuietly(temp).catch(() => {});
      throw describeWriteError(path, error);
    }
    return new Reservation(path, temp, file, size, options);
  }

  /** The bytes kept, 0 once committed or released. */
  get size(): number {
    return this.#file === undefined ? 0 : this.#size;
  }

  /** Whether `data` fits in the room kept. */
  fits(data: Uint8Array): boolean {
    return data.length <= this.size;
  }

  /**
   * Writes `data` over the kept bytes and renames the file over `path`. A failure leaves the
   * room to {@linkcode Reservation.release}.
   */
  async commit(data: Uint8Array): Promise<void> {
    const file = this.#file;
    if (file === undefined || !this.fits(data)) {
      throw new RangeError(
        `Cannot write ${data.length} bytes to '${this.path}' in the room kept: ${this.size} bytes are kept`,
      );
    }
    try {
      await refuseLinks(this.path, this.#options.within);
      await file.seek(0, Deno.SeekMode.Start);
      await writeAll(file, data);
      await file.truncate(data.length);
      this.#size = data.length;
      this.#file = undefined;
      file.close();
      await Deno.rename(this.#temp, this.path);
    } catch (error) {
      throw describeWriteError(this.path, error);
    }
  }

  /** Gives the room back; nothing happens once committed. */
  async release(): Promise<void> {
    this.#file?.close();
    this.#file = undefined;
    await removeQuietly(this.#temp);
  }
}
